//! Giving memory back once the hub is idle: the mappings of its own code that start-up touched,
//! and the free pages the allocator keeps.

use std::io;

/// What [`release_code_pages`] gave back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReleasedCode {
    /// Read-only mappings of the executable released.
    pub mappings: usize,
    /// Resident KiB they held just before.
    pub kib: u64,
    /// Read-only mappings of the executable left alone because they hold private copies of
    /// pages (relocated data, a debugger's breakpoints): releasing those would lose the copies.
    pub kept: usize,
}

/// Releases this process's page-table mappings of its own executable's read-only segments (code
/// and constants), so that only the pages it uses from now on count as resident.
///
/// Why: a page of code stays mapped, and counted in the resident set, from the first time it runs
/// until the kernel needs the memory, and Linux maps up to 16 neighbouring pages of the file on
/// each fault. Start-up (configuration, migrations, every adapter's set-up) runs most of a
/// 16 MiB binary once: 9 MiB of it stayed resident on an idle hub that uses about 1 MiB of its
/// code. Released, the pages stay in the page cache: the next use of one is a minor fault, with
/// no disk read.
///
/// Only mappings of the executable that are read-only and hold no private (anonymous) page are
/// released; for those, `MADV_DONTNEED` drops nothing that cannot be read again from the file.
/// Writable data, and read-only data the loader relocated (`.data.rel.ro`), are never touched.
#[cfg(target_os = "linux")]
pub fn release_code_pages() -> io::Result<ReleasedCode> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata("/proc/self/exe")?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut out = ReleasedCode::default();
    for mapping in parse_smaps(&smaps) {
        if mapping.inode != exe.ino() || !(mapping.perms == "r-xp" || mapping.perms == "r--p") {
            continue;
        }
        // Private copies (copy-on-write) are anonymous pages. `Private_Dirty` is no guide: it also
        // counts the file's own pages not yet written back (a binary just linked).
        if mapping.anonymous_kib != 0 || mapping.swap_kib != 0 {
            out.kept += 1;
            continue;
        }
        dont_need(mapping.start, mapping.end)?;
        out.mappings += 1;
        out.kib += mapping.rss_kib;
    }
    Ok(out)
}

/// Elsewhere: nothing released.
#[cfg(not(target_os = "linux"))]
pub fn release_code_pages() -> io::Result<ReleasedCode> {
    Ok(ReleasedCode::default())
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn dont_need(start: usize, end: usize) -> io::Result<()> {
    // SAFETY: [start, end) is one whole mapping of this process, taken from /proc/self/smaps just
    // before: a read-only, private mapping of the executable file that holds no anonymous page
    // (checked by the caller), so it cannot be written and every page it holds is the file's.
    // MADV_DONTNEED on such a mapping only drops page-table entries; the next access maps the
    // same bytes again from the file. No Rust reference is invalidated: the contents do not change.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Gives the allocator's free pages back to the system, in every arena, including those inside
/// the heap (glibc returns only the top of the heap on its own). Returns whether any was
/// returned. After a burst (10,000 devices reporting at once) this is tens of MiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_heap() -> bool {
    // SAFETY: malloc_trim takes an integer and only returns free memory of the allocator to the
    // system; glibc takes each arena's lock while it does.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other C libraries: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_heap() -> bool {
    false
}

/// One mapping of `/proc/self/smaps`, with the fields used here.
#[derive(Debug, Default, PartialEq, Eq)]
struct Mapping<'a> {
    start: usize,
    end: usize,
    perms: &'a str,
    inode: u64,
    rss_kib: u64,
    anonymous_kib: u64,
    swap_kib: u64,
}

/// Reads the mappings of an `smaps` text. A header line reads
/// `start-end perms offset dev inode [path]`; the lines after it read `Field: value [kB]`. A
/// line that fits neither is skipped; a mapping whose header cannot be read is left out.
fn parse_smaps(text: &str) -> Vec<Mapping<'_>> {
    let mut out: Vec<Mapping<'_>> = Vec::new();
    let mut current: Option<Mapping<'_>> = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some(field) = first.strip_suffix(':') {
            let Some(m) = current.as_mut() else { continue };
            let value = words.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            match field {
                "Rss" => m.rss_kib = value,
                "Anonymous" => m.anonymous_kib = value,
                "Swap" => m.swap_kib = value,
                _ => {}
            }
            continue;
        }
        out.extend(current.take());
        current = parse_header(first, &mut words);
    }
    out.extend(current);
    out
}

fn parse_header<'a>(range: &str, words: &mut impl Iterator<Item = &'a str>) -> Option<Mapping<'a>> {
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = words.next()?;
    let _offset = words.next()?;
    let _device = words.next()?;
    let inode = words.next()?.parse().ok()?;
    (end > start).then_some(Mapping { start, end, perms, inode, ..Mapping::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
5641b851a000-5641b88f3000 r--p 00000000 fe:00 5483501                    /usr/bin/hearth
Size:               3940 kB
Rss:                1560 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd mr mw me dw sd
5641b94e3000-5641b9549000 r--p 00fc7000 fe:00 5483501                    /usr/bin/hearth
Rss:                 408 kB
Private_Dirty:       408 kB
Anonymous:           408 kB
garbage line
zzzz-yyyy r--p 0 0 0
7ffeba8d5000-7ffeba8d6000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
";

    #[test]
    fn smaps_headers_and_fields_are_read_and_bad_lines_skipped() {
        let maps = parse_smaps(SAMPLE);
        assert_eq!(maps.len(), 3, "{maps:?}");
        assert_eq!(maps[0].start, 0x5641_b851_a000);
        assert_eq!(maps[0].perms, "r--p");
        assert_eq!(maps[0].inode, 5_483_501);
        assert_eq!(maps[0].rss_kib, 1560);
        assert_eq!(maps[1].anonymous_kib, 408, "relocated data holds anonymous pages");
        assert_eq!(maps[2].inode, 0);
        assert_eq!(maps[2].rss_kib, 4);
        assert!(parse_smaps("").is_empty());
    }

    /// Relocated data: pointers the loader wrote at start-up (PIE), kept in `.data.rel.ro`.
    static NAMES: &[&str] = &["lamp", "plug", "sensor"];

    fn own_code_rss_kib() -> u64 {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata("/proc/self/exe").expect("exe").ino();
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        parse_smaps(&smaps)
            .iter()
            .filter(|m| m.inode == ino && (m.perms == "r-xp" || m.perms == "r--p") && m.anonymous_kib == 0)
            .map(|m| m.rss_kib)
            .sum()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn code_pages_are_released_and_the_process_runs_on_with_its_data_intact() {
        let _alone = crate::MEASURING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = own_code_rss_kib();
        let released = release_code_pages().expect("release");
        assert!(released.mappings >= 2, "code and constants are released: {released:?}");
        assert!(released.kib > 0 && released.kib <= before + 64, "{released:?}, {before} KiB before");
        // Code runs, constants read back, relocated pointers still point where they did.
        let joined = std::hint::black_box(NAMES).join(",");
        assert_eq!(joined, "lamp,plug,sensor");
        let text = format!("{:?}", std::hint::black_box(vec![1.5f64, 2.25]));
        assert_eq!(text, "[1.5, 2.25]");
        // What this test ran since is mapped again, not the rest: less is resident than before.
        let after = own_code_rss_kib();
        assert!(after < before, "{after} KiB of code resident after release, {before} KiB before");
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn free_pages_inside_the_heap_go_back_to_the_system() {
        fn rss_anon_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").expect("status");
            let line = status.lines().find(|l| l.starts_with("RssAnon:")).expect("RssAnon");
            line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("number")
        }
        let _alone = crate::MEASURING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // 32 MiB in 2 KiB blocks, each touched; one in 64 is kept, so the freed ones sit between
        // live blocks where glibc's free cannot hand them back.
        let mut blocks: Vec<Vec<u8>> = (0..16 * 1024).map(|_| vec![7u8; 2048]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter_mut().step_by(64).map(std::mem::take).collect();
        drop(blocks);
        let before = rss_anon_kib();
        release_free_heap();
        let after = rss_anon_kib();
        std::hint::black_box(&kept);
        assert!(
            before.saturating_sub(after) >= 16 * 1024,
            "{before} KiB resident before the trim, {after} KiB after: expected at least 16 MiB back"
        );
    }
}
