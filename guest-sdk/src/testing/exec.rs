//! Commands run in a test container: what they were given ([`ExecArgs`]) and how the
//! harness answers them (fixed output or a handler), as ops' `Harness.handle_exec`.

use std::cell::RefCell;
use std::rc::Rc;

use super::container::{TestContainer, api};
use crate::container::{ExecOptions, ExecOutput};
use crate::error::Result;

/// What a command run in a [`TestContainer`] was given (ops' `testing.ExecArgs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecArgs {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The options the charm passed.
    pub options: ExecOptions,
    /// Everything the charm wrote to stdin before it read output or waited.
    pub stdin: Vec<u8>,
}

/// A handler registered with [`TestContainer::handle_exec_with`].
type ExecFn = dyn FnMut(&ExecArgs, &mut TestContainer) -> ExecOutput;

/// How the harness answers one command.
#[derive(Clone)]
pub(crate) enum ExecHandler {
    Fixed(ExecOutput),
    Call(Rc<RefCell<ExecFn>>),
}

impl std::fmt::Debug for ExecHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecHandler::Fixed(o) => f.debug_tuple("Fixed").field(o).finish(),
            ExecHandler::Call(_) => f.write_str("Call(..)"),
        }
    }
}

impl ExecHandler {
    /// Runs the command: a fixed result, or the handler on the container. With
    /// `combine_stderr` the command's stderr follows its stdout on the one stream, as a
    /// real command's would (interleaving aside).
    pub(crate) fn run(&self, args: &ExecArgs, container: &mut TestContainer) -> ExecOutput {
        let mut out = match self {
            ExecHandler::Fixed(o) => o.clone(),
            ExecHandler::Call(f) => (f.borrow_mut())(args, container),
        };
        if args.options.combine_stderr {
            let stderr = std::mem::take(&mut out.stderr);
            out.stdout.extend(stderr);
        }
        out
    }
}

/// The commands a container knows how to "run", and those the charm ran.
#[derive(Clone, Debug, Default)]
pub(super) struct Execs {
    /// Registered handlers, by command prefix.
    handlers: Vec<(Vec<String>, ExecHandler)>,
    /// Commands the charm ran, in order.
    log: Vec<Vec<String>>,
}

impl Execs {
    /// Registers `handler` for commands starting with `prefix`.
    fn add(&mut self, prefix: &[&str], handler: ExecHandler) {
        self.handlers
            .push((prefix.iter().map(|s| s.to_string()).collect(), handler));
    }
}

impl TestContainer {
    /// Makes commands starting with `prefix` "run" with this exit code and output (the
    /// longest matching prefix wins), as ops' `Harness.handle_exec`.
    pub fn handle_exec(&mut self, prefix: &[&str], exit_code: i32, stdout: &str, stderr: &str) {
        self.execs.add(
            prefix,
            ExecHandler::Fixed(ExecOutput {
                exit_code,
                stdout: stdout.as_bytes().to_vec(),
                stderr: stderr.as_bytes().to_vec(),
            }),
        );
    }

    /// Makes commands starting with `prefix` run `handler` (ops' `handle_exec` with a
    /// handler): it gets the command, its options and the stdin the charm wrote, may change
    /// this container (write the files a real command would), and returns the exit code and
    /// output. It runs when the charm first reads output or waits.
    pub fn handle_exec_with(
        &mut self,
        prefix: &[&str],
        handler: impl FnMut(&ExecArgs, &mut TestContainer) -> ExecOutput + 'static,
    ) {
        self.execs
            .add(prefix, ExecHandler::Call(Rc::new(RefCell::new(handler))));
    }

    /// The commands the charm ran, in order.
    pub fn exec_log(&self) -> &[Vec<String>] {
        &self.execs.log
    }

    /// Finds the handler of a command the charm starts, or Pebble's error for a missing
    /// executable.
    pub(crate) fn fake_exec(&mut self, command: &[String]) -> Result<ExecHandler> {
        self.execs.log.push(command.to_vec());
        self.execs
            .handlers
            .iter()
            .filter(|(p, _)| command.starts_with(p))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, h)| h.clone())
            .ok_or_else(|| {
                api(
                    400,
                    format!(
                        "cannot find executable {:?} (no handle_exec registered for it)",
                        command.first().map(String::as_str).unwrap_or("")
                    ),
                )
            })
    }
}
