//! Identities, as Pebble's `/v1/identities` keeps them: named users with an access level
//! (`admin`, `read`, `metrics`, `untrusted`), known by a local user id (`local`), an HTTP
//! basic-auth password hash (`basic`, sha512-crypt) or a client certificate (`cert`, PEM).
//! Validated and changed (`add`, `update`, `replace`, `remove`) with Pebble's rules and
//! texts; persisted with the rest of the container's state. Matching a request to an
//! identity (and checking a password) is the API server's.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// What an identity may do, from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityAccess {
    /// Nothing but the open endpoints.
    Untrusted,
    /// `/v1/metrics` (also over plain HTTP with basic auth).
    Metrics,
    /// Every read-only endpoint.
    Read,
    /// Everything.
    Admin,
}

impl IdentityAccess {
    /// Pebble's name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityAccess::Untrusted => "untrusted",
            IdentityAccess::Metrics => "metrics",
            IdentityAccess::Read => "read",
            IdentityAccess::Admin => "admin",
        }
    }
}

/// A local identity: a user id of unix-socket peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalIdentity {
    /// The user id (`None` only in a request that forgot it, which is refused).
    #[serde(rename = "user-id")]
    pub user_id: Option<u32>,
}

/// A basic-auth identity: its password's sha512-crypt hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicIdentity {
    /// The hash (`$6$salt$...`, as `openssl passwd -6` makes).
    pub password: String,
}

/// A certificate identity: a PEM-encoded X.509 certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertIdentity {
    /// The certificate.
    pub pem: String,
}

/// One identity as the API and the state file carry it (`access` as text, so that a bad
/// value is refused with Pebble's text rather than a decoding error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `admin`, `read`, `metrics` or `untrusted`.
    #[serde(default)]
    pub access: String,
    /// Known by a local user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalIdentity>,
    /// Known by a basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicIdentity>,
    /// Known by a client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<CertIdentity>,
}

impl Identity {
    /// The access level (a stored identity's is always valid).
    pub fn level(&self) -> IdentityAccess {
        match self.access.as_str() {
            "admin" => IdentityAccess::Admin,
            "read" => IdentityAccess::Read,
            "metrics" => IdentityAccess::Metrics,
            _ => IdentityAccess::Untrusted,
        }
    }

    /// The identity as the API shows it: secrets masked.
    pub fn masked(&self) -> Identity {
        let mut out = self.clone();
        if let Some(b) = out.basic.as_mut() {
            b.password = "*****".into();
        }
        if let Some(c) = out.cert.as_mut() {
            c.pem = "*****".into();
        }
        out
    }

    /// Checks an identity given to the API (Pebble's `identityFromAPI` and `Validate`).
    fn check_request(&self, name: &str) -> Result<(), String> {
        if self.local.as_ref().is_some_and(|l| l.user_id.is_none()) {
            return Err("local identity must specify user-id".into());
        }
        if let Some(c) = &self.cert {
            check_pem_certificate(&c.pem)?;
        }
        self.validate(name)
    }

    /// Pebble's `Identity.Validate` (whose name error quotes the identity's own name field,
    /// still empty when the API checks a new identity: the text says `""`, as Pebble's does).
    fn validate(&self, name: &str) -> Result<(), String> {
        if !valid_name(name) {
            return Err("identity name \"\" invalid: must start with an alphabetic character and only contain alphanumeric characters, underscore, and hyphen".into());
        }
        match self.access.as_str() {
            "admin" | "read" | "metrics" | "untrusted" => {}
            "" => {
                return Err(
                    "access value must be specified (\"admin\", \"read\", \"metrics\", or \"untrusted\")"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "invalid access value {other:?}, must be \"admin\", \"read\", \"metrics\", or \"untrusted\""
                ));
            }
        }
        if self.basic.as_ref().is_some_and(|b| b.password.is_empty()) {
            return Err("basic identity must specify password (hashed)".into());
        }
        if self.local.is_none() && self.basic.is_none() && self.cert.is_none() {
            return Err(
                "identity must have at least one type (\"local\", \"basic\", or \"cert\")".into(),
            );
        }
        Ok(())
    }
}

/// Pebble's identity names: a letter, then letters, digits, `_` and `-`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks that `pem` is one PEM `CERTIFICATE` block and nothing after it, holding a DER
/// structure (a SEQUENCE spanning the whole block); Pebble's texts.
fn check_pem_certificate(pem: &str) -> Result<(), String> {
    certificate_der(pem).map(drop)
}

/// The DER certificate a cert identity's PEM holds (what a TLS client presents), or why
/// it holds none, in Pebble's words.
pub fn certificate_der(pem: &str) -> Result<Vec<u8>, String> {
    let missing = || "cert identity must include a PEM-encoded certificate".to_string();
    let begin = pem.find("-----BEGIN ").ok_or_else(missing)?;
    let rest = &pem[begin..];
    let header_end = rest
        .find("-----\n")
        .or_else(|| rest.find("-----\r\n"))
        .ok_or_else(missing)?;
    let label = &rest["-----BEGIN ".len()..header_end];
    let end_marker = format!("-----END {label}-----");
    let body_start = rest[header_end..]
        .find('\n')
        .map(|i| header_end + i + 1)
        .ok_or_else(missing)?;
    let end = rest.find(&end_marker).ok_or_else(missing)?;
    let body: String = rest[body_start..end].split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| missing())?;
    let after = rest[end + end_marker.len()..].trim_start_matches(['\r', '\n']);
    if !after.is_empty() {
        return Err("cert identity cannot have extra data after the PEM block".into());
    }
    if !der_sequence_spans(&der) {
        return Err(
            "cannot parse certificate from cert identity: x509: malformed certificate".into(),
        );
    }
    Ok(der)
}

/// Whether `der` is one DER SEQUENCE whose length covers it exactly.
fn der_sequence_spans(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(*first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return false;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    len == rest.len() && len > 0
}

/// The identities of a container, by name.
pub type Identities = BTreeMap<String, Identity>;

/// How `POST /v1/identities` changes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentitiesAction {
    /// New identities only.
    Add,
    /// Existing identities only.
    Update,
    /// Add or update; a `null` removes.
    Replace,
    /// Remove (each given as `null`).
    Remove,
}

impl IdentitiesAction {
    /// Pebble's action names.
    pub fn parse(action: &str) -> Result<Self, String> {
        Ok(match action {
            "add" => IdentitiesAction::Add,
            "update" => IdentitiesAction::Update,
            "replace" => IdentitiesAction::Replace,
            "remove" => IdentitiesAction::Remove,
            other => {
                return Err(format!(
                    "invalid action {other:?}, must be \"add\", \"update\", \"replace\", or \"remove\""
                ));
            }
        })
    }
}

/// Checks the identities of a request (each `None` is a `null`) for `action`, with the
/// API's texts (`invalid identity for "x": ...`, null where not allowed).
pub fn check_request(
    action: IdentitiesAction,
    given: &BTreeMap<String, Option<Identity>>,
) -> Result<(), String> {
    for (name, ident) in given {
        if let Some(i) = ident {
            i.check_request(name)
                .map_err(|e| format!("invalid identity for {name:?}: {e}"))?;
        }
    }
    for (name, ident) in given {
        let op = match action {
            IdentitiesAction::Add => "add",
            IdentitiesAction::Update => "update",
            _ => continue,
        };
        if ident.is_none() {
            return Err(format!(
                "identity value for {name:?} must not be null for {op} operation"
            ));
        }
    }
    if action == IdentitiesAction::Remove
        && let Some((name, _)) = given.iter().find(|(_, i)| i.is_some())
    {
        return Err(format!(
            "identity value for {name:?} must be null for remove operation"
        ));
    }
    Ok(())
}

/// Applies `action` with `given` (checked by [`check_request`]) to `current`, with Pebble's
/// rules and texts; `current` is unchanged on error.
pub fn apply(
    current: &mut Identities,
    action: IdentitiesAction,
    given: BTreeMap<String, Option<Identity>>,
) -> Result<(), String> {
    let names_where = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        given.keys().filter(|n| pred(n)).cloned().collect()
    };
    let mut next = current.clone();
    match action {
        IdentitiesAction::Add | IdentitiesAction::Update => {
            let clash = if action == IdentitiesAction::Add {
                names_where(&|n| current.contains_key(n))
            } else {
                names_where(&|n| !current.contains_key(n))
            };
            for (name, ident) in &given {
                if let Some(i) = ident {
                    i.validate(name)
                        .map_err(|e| format!("identity {name:?} invalid: {e}"))?;
                }
            }
            if !clash.is_empty() {
                let what = if action == IdentitiesAction::Add {
                    "already exist"
                } else {
                    "do not exist"
                };
                return Err(format!("identities {what}: {}", clash.join(", ")));
            }
            next.extend(given.into_iter().filter_map(|(n, i)| Some((n, i?))));
        }
        IdentitiesAction::Replace => {
            for (name, ident) in given {
                match ident {
                    Some(i) => {
                        i.validate(&name)
                            .map_err(|e| format!("identity {name:?} invalid: {e}"))?;
                        next.insert(name, i);
                    }
                    None => {
                        next.remove(&name);
                    }
                }
            }
        }
        IdentitiesAction::Remove => {
            let missing = names_where(&|n| !current.contains_key(n));
            if !missing.is_empty() {
                return Err(format!("identities do not exist: {}", missing.join(", ")));
            }
            for name in given.keys() {
                next.remove(name);
            }
        }
    }
    unique_user_ids(&next)?;
    *current = next;
    Ok(())
}

/// Pebble's rule: one local identity per user id.
fn unique_user_ids(idents: &Identities) -> Result<(), String> {
    let mut by_uid: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (name, i) in idents {
        if let Some(uid) = i.local.as_ref().and_then(|l| l.user_id) {
            by_uid.entry(uid).or_default().push(name);
        }
    }
    match by_uid.into_iter().find(|(_, names)| names.len() > 1) {
        Some((uid, names)) => Err(format!(
            "cannot have multiple identities with user ID {uid} ({})",
            names.join(", ")
        )),
        None => Ok(()),
    }
}

/// The identity a local user id names, if any.
pub fn by_user_id(idents: &Identities, uid: u32) -> Option<(&str, &Identity)> {
    idents
        .iter()
        .find(|(_, i)| i.local.as_ref().and_then(|l| l.user_id) == Some(uid))
        .map(|(n, i)| (n.as_str(), i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(access: &str, uid: u32) -> Option<Identity> {
        Some(Identity {
            access: access.into(),
            local: Some(LocalIdentity { user_id: Some(uid) }),
            basic: None,
            cert: None,
        })
    }

    fn given(items: &[(&str, Option<Identity>)]) -> BTreeMap<String, Option<Identity>> {
        items
            .iter()
            .map(|(n, i)| (n.to_string(), i.clone()))
            .collect()
    }

    #[test]
    fn changes_follow_pebbles_rules_and_texts() {
        let mut ids = Identities::new();
        let add = given(&[("bob", local("admin", 42)), ("alice", local("read", 1000))]);
        apply(&mut ids, IdentitiesAction::Add, add.clone()).unwrap();
        assert_eq!(
            apply(&mut ids, IdentitiesAction::Add, add).unwrap_err(),
            "identities already exist: alice, bob"
        );
        assert_eq!(
            apply(
                &mut ids,
                IdentitiesAction::Update,
                given(&[("carol", local("read", 7))])
            )
            .unwrap_err(),
            "identities do not exist: carol"
        );
        assert_eq!(
            apply(
                &mut ids,
                IdentitiesAction::Update,
                given(&[("alice", local("read", 42))])
            )
            .unwrap_err(),
            "cannot have multiple identities with user ID 42 (alice, bob)"
        );
        apply(
            &mut ids,
            IdentitiesAction::Replace,
            given(&[("bob", None), ("carol", local("metrics", 7))]),
        )
        .unwrap();
        assert_eq!(ids.keys().collect::<Vec<_>>(), ["alice", "carol"]);
        assert_eq!(
            apply(&mut ids, IdentitiesAction::Remove, given(&[("bob", None)])).unwrap_err(),
            "identities do not exist: bob"
        );
        assert_eq!(by_user_id(&ids, 7).map(|(n, _)| n), Some("carol"));
    }

    #[test]
    fn requests_are_checked_with_pebbles_texts() {
        let check = |action, items: &[(&str, Option<Identity>)]| {
            check_request(action, &given(items)).unwrap_err()
        };
        let mut bad = local("root", 1).unwrap();
        assert_eq!(
            check(IdentitiesAction::Add, &[("x", Some(bad.clone()))]),
            "invalid identity for \"x\": invalid access value \"root\", must be \"admin\", \"read\", \"metrics\", or \"untrusted\""
        );
        bad.access = String::new();
        assert!(
            check(IdentitiesAction::Add, &[("x", Some(bad))])
                .contains("access value must be specified")
        );
        assert_eq!(
            check(IdentitiesAction::Add, &[("1x", local("read", 1))]),
            "invalid identity for \"1x\": identity name \"\" invalid: must start with an alphabetic character and only contain alphanumeric characters, underscore, and hyphen"
        );
        let no_uid = Identity {
            access: "read".into(),
            local: Some(LocalIdentity { user_id: None }),
            basic: None,
            cert: None,
        };
        assert_eq!(
            check(IdentitiesAction::Add, &[("x", Some(no_uid))]),
            "invalid identity for \"x\": local identity must specify user-id"
        );
        assert_eq!(
            check(IdentitiesAction::Add, &[("x", None)]),
            "identity value for \"x\" must not be null for add operation"
        );
        assert_eq!(
            check(IdentitiesAction::Remove, &[("x", local("read", 1))]),
            "identity value for \"x\" must be null for remove operation"
        );
        let cert = |pem: &str| Identity {
            access: "read".into(),
            local: None,
            basic: None,
            cert: Some(CertIdentity { pem: pem.into() }),
        };
        assert_eq!(
            check(IdentitiesAction::Add, &[("x", Some(cert("nope")))]),
            "invalid identity for \"x\": cert identity must include a PEM-encoded certificate"
        );
        assert_eq!(
            check(
                IdentitiesAction::Add,
                &[(
                    "x",
                    Some(cert(
                        "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n"
                    ))
                )]
            ),
            "invalid identity for \"x\": cannot parse certificate from cert identity: x509: malformed certificate"
        );
        assert_eq!(
            IdentitiesAction::parse("drop").unwrap_err(),
            "invalid action \"drop\", must be \"add\", \"update\", \"replace\", or \"remove\""
        );
    }

    #[test]
    fn secrets_are_masked_and_levels_ordered() {
        let i = Identity {
            access: "metrics".into(),
            local: None,
            basic: Some(BasicIdentity {
                password: "$6$salt$hash".into(),
            }),
            cert: None,
        };
        assert_eq!(i.masked().basic.unwrap().password, "*****");
        assert!(IdentityAccess::Untrusted < IdentityAccess::Metrics);
        assert!(IdentityAccess::Read < IdentityAccess::Admin);
        assert_eq!(i.level(), IdentityAccess::Metrics);
    }
}
