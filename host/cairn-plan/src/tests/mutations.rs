//! Mutated layers never panic, and whatever parses renders to text that parses back the same.

use crate::*;

#[test]
fn mutated_layers_round_trip() {
    let seeds = [
        "summary: \"a\\tb ☃ 😀\"\ndescription: |\n  line1\n   line2\nservices:\n  'x y':\n    override: replace\n    command: >\n      folded text that is long enough to need folding at eighty columns when rendered back out\n    environment:\n      'k: v': \"- \"\n      e: ''\n      n: 1_0\n",
        "services:\n  s: &a\n    override: replace\n    command: 'it''s'\n  t:\n    <<: *a\n    user-id: 0x10\n    backoff-factor: 1e3\n",
        "services:\n  a:\n    override: replace\n    command: x [ y ]\n    after: [b]\n    environment: {a: 1}\n  b: {override: merge, command: y, kill-delay: 1s}\nchecks:\n  c: {override: replace, http: {url: 'http://x'}, period: 1s}\nlog-targets:\n  t: {type: loki, location: x, services: [a]}\nworkloads:\n  w: {override: replace}\npairing: {mode: single}\n",
    ];
    let mut state: u64 = 0x1234_5678_9abc_def0;
    // xorshift64: a fixed, reproducible sequence of mutations.
    let mut rnd = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"{}[]:,-&*!|>'\"%@`#? \n\tabc01.~<";
    for seed in seeds {
        for _ in 0..2000 {
            let mut bytes = seed.as_bytes().to_vec();
            let n = (rnd() % 6) as usize + 1;
            for _ in 0..n {
                let pos = (rnd() as usize) % bytes.len();
                match rnd() % 3 {
                    0 => bytes[pos] = alphabet[(rnd() as usize) % alphabet.len()],
                    1 => {
                        bytes.insert(pos, alphabet[(rnd() as usize) % alphabet.len()]);
                    }
                    _ => {
                        bytes.remove(pos);
                    }
                }
            }
            if let Ok(layer) = parse_layer(0, "f", &bytes) {
                let text = layer.to_yaml();
                let back = parse_layer(0, "f", text.as_bytes()).unwrap_or_else(|e| {
                    panic!("{e}\n{text}\nfrom\n{}", String::from_utf8_lossy(&bytes))
                });
                assert_eq!(back, layer, "{text}");
                if let Ok(plan) = Plan::from_layers(&[layer]) {
                    let _ = plan.to_yaml();
                    let names: Vec<String> = plan.services.keys().cloned().collect();
                    let _ = plan.start_lanes(&names);
                    let _ = plan.stop_lanes(&names);
                }
            }
        }
    }
}
