use super::yaml;
use crate::*;

#[test]
fn smoke() {
    let text = yaml(r#"
        summary: Simple layer
        description: A simple layer.
        services:
            srv1:
                summary: Service summary
                startup: enabled
                override: replace
                command: cmd arg1 "arg2 arg3"
                after:
                    - srv2
                before:
                    - srv3
                requires:
                    - srv2
                    - srv3
                environment:
                    var0: val0
                    var1: val1
                    var2: val2
                backoff-delay: 1s
                backoff-factor: 1.5
                backoff-limit: 10s
            srv2:
                override: replace
                command: srv2cmd
            srv3:
                override: replace
                command: srv3cmd
    "#);
    let layer = parse_layer(1, "layer1", text.as_bytes()).unwrap();
    println!("{}", layer.to_yaml());
    assert_eq!(layer.to_yaml(), text);
    let plan = Plan::from_layers(&[layer]).unwrap();
    println!("{}", plan.to_yaml());
    for bad in ["services:\n  srv1:\n    future: true\n    override: replace\n", "services: [a]", "services:\n  a: b\n  c: [d]\n", "x: 1", "a: b: c", "services:\n  s:\n    backoff-delay: foo\n", "services:\n  s:\n    override: replace\n    command: x\n    user-id: -1\n"] {
        println!("{:?}", parse_layer(1, "l", bad.as_bytes()).map(|l| l.to_yaml()));
    }
}
