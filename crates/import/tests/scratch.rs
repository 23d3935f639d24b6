#[test]
fn scratch() {
    let text = std::fs::read_to_string(format!("{}/tests/fixtures/dnsmasq.conf", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let local = ["198.18.1.1/24".parse().unwrap(), "198.18.0.1/24".parse().unwrap()];
    let c = leased_import::dnsmasq::import_config(&text, "dnsmasq.conf", &local);
    println!("lease file {:?}", c.lease_file);
    match leased_import::finish(c.imported, std::path::Path::new("/tmp/x.leases"), "dnsmasq", "out.toml") {
        Ok(r) => println!("{}", r.text),
        Err(e) => println!("ERR {e}"),
    }
}
