fn main() {
    println!("shipdeck: under construction");
}
