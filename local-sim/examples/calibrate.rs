use pm_local_sim::{generate, stats};
fn main() {
    let t = std::time::Instant::now();
    let ds = generate::generate(&generate::GenConfig { seed: 3, ..generate::GenConfig::azure_default() });
    eprintln!("generated in {:?}", t.elapsed());
    let s = stats::compute(&ds);
    print!("{}", stats::comparison_table(&s));
    println!("errors by hour {:?}", s.errors_by_hour);
}
