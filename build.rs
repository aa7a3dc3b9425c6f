// Compiles the BPF scheduler and generates its Rust skeleton and the bindings
// for the types in bpf/intf.h.
fn main() {
    scx_cargo::BpfBuilder::new()
        .unwrap()
        .enable_intf("bpf/intf.h", "bpf_intf.rs")
        .enable_skel("bpf/main.bpf.c", "bpf")
        .build()
        .unwrap();
}
