//! `leased`: the binary. Thin: parses the command line and wires the rooms together.

fn main() {
    println!("leased");
}
