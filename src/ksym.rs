// SPDX-License-Identifier: GPL-2.0
//! Addresses of kernel data the BPF side reads, found in /proc/kallsyms.
//!
//! The kernel's BTF describes no global variables, so the BPF side cannot
//! name them as typed ksyms; as untyped ksyms, libbpf would parse the whole
//! of /proc/kallsyms (over 170,000 lines) with fscanf at every load. The
//! loader scans it once, stops at the symbol, and passes the address in the
//! rodata.

use std::fs::File;
use std::io::{BufRead, BufReader};

/// The address of the kernel's (not a module's) symbol @name, or `None`
/// when kallsyms lacks it or hides addresses (kptr_restrict).
pub fn address(name: &str) -> Option<u64> {
    let file = File::open("/proc/kallsyms").ok()?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(found) = parse_line(&line, name) {
            return found;
        }
    }
}

/// For a kallsyms line ("ADDRESS TYPE NAME", a module's with "\t[MODULE]"
/// after it): `Some(address)` if it is the kernel's @name, `Some(None)` if
/// it is but its address is hidden (0), `None` otherwise.
fn parse_line(line: &str, name: &str) -> Option<Option<u64>> {
    let mut fields = line.split_ascii_whitespace();
    let (address, _kind, symbol) = (fields.next()?, fields.next()?, fields.next()?);
    if symbol != name || fields.next().is_some() {
        return None;
    }
    Some(u64::from_str_radix(address, 16).ok().filter(|&a| a != 0))
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn kallsyms_lines_parse() {
        let name = "__cpu_active_mask";
        assert_eq!(
            parse_line("ffffffff9e8f1f40 D __cpu_active_mask\n", name),
            Some(Some(0xffffffff9e8f1f40))
        );
        assert_eq!(
            parse_line("0000000000000000 D __cpu_active_mask\n", name),
            Some(None)
        );
        assert_eq!(
            parse_line("ffffffff9e8f1f48 D __cpu_active_mask_x\n", name),
            None
        );
        assert_eq!(
            parse_line("ffffffffc0a01000 d __cpu_active_mask\t[kvm]\n", name),
            None
        );
        assert_eq!(parse_line("ffffffff9e8f1f40 D\n", name), None);
        assert_eq!(parse_line("", name), None);
    }
}
