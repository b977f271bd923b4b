//! Times parsing, adding and rendering a layer of many services (`cargo run --release
//! --example big_layer -p cairn-plan -- 50000`): the cost of a big `POST /v1/layers`.

use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let mut yaml = String::from("services:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  s{i}:\n    override: replace\n    command: sleep 1000\n"
        ));
    }
    let t = Instant::now();
    let layer = cairn_plan::parse_added_layer("big", yaml.as_bytes()).unwrap();
    println!("parse: {:?}", t.elapsed());
    let t = Instant::now();
    let mut layers = cairn_plan::Layers::default();
    layers.add(layer, false, false).unwrap();
    println!("add (combine, validate): {:?}", t.elapsed());
    let t = Instant::now();
    let out = layers.plan().to_yaml();
    println!("render: {:?} ({} bytes)", t.elapsed(), out.len());
}
