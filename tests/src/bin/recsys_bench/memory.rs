//! A backend's memory as the benchmarks report it, from `/proc/<pid>/smaps`: resident, private to the backend, and
//! the two kinds of page the kernel counts as private only because no other live process has touched them yet.
use anyhow::Result;

/// One backend's memory, in kB.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackendMemory {
    /// Resident pages of every mapping.
    pub rss_kb: u64,
    /// Private pages outside PostgreSQL's shared memory: the backend's heap, stacks and libraries, and the pages of
    /// pg_recsys's shared table files that it alone has touched so far (`shared_file_kb`).
    pub private_kb: u64,
    /// Of `private_kb`: pages of the shared table files under `$PGDATA/pg_recsys/` that no other live process maps
    /// yet (they become shared as other backends read them).
    pub shared_file_kb: u64,
    /// Pages of PostgreSQL's shared memory (shared buffers among them) that only this backend has touched since they
    /// were last mapped by a live process: the kernel calls them private, yet they belong to the server (a
    /// backend reading a model stored in `recsys.models` through cold buffers gets hundreds of MB of them).
    pub server_shared_kb: u64,
}

impl BackendMemory {
    /// Private memory outside PostgreSQL's shared memory, in MB.
    pub fn private_mb(&self) -> u64 {
        self.private_kb / 1024
    }
}

/// Whether a mapping is PostgreSQL's shared memory: the main segment (an anonymous shared mapping, shown as
/// `/dev/zero (deleted)`), System V segments and dynamic shared memory under `/dev/shm`.
fn is_server_shared_memory(name: &str) -> bool {
    name.starts_with("/dev/zero") || name.starts_with("/SYSV") || name.starts_with("/dev/shm/PostgreSQL.")
}

/// The memory of process `pid`.
pub fn backend_memory(pid: i32) -> Result<BackendMemory> {
    Ok(from_smaps(&std::fs::read_to_string(format!("/proc/{pid}/smaps"))?))
}

/// The memory described by the text of a `/proc/<pid>/smaps` file.
fn from_smaps(smaps: &str) -> BackendMemory {
    let mut memory = BackendMemory::default();
    let mut mapping = String::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if !first.ends_with(':') {
            mapping = fields.skip(4).collect::<Vec<_>>().join(" ");
            continue;
        }
        let kb: u64 = fields.next().and_then(|kb| kb.parse().ok()).unwrap_or(0);
        match first {
            "Rss:" => memory.rss_kb += kb,
            "Private_Clean:" | "Private_Dirty:" if is_server_shared_memory(&mapping) => memory.server_shared_kb += kb,
            "Private_Clean:" | "Private_Dirty:" => {
                memory.private_kb += kb;
                if mapping.contains("/pg_recsys/") && mapping.ends_with(".safetensors") {
                    memory.shared_file_kb += kb;
                }
            }
            _ => {}
        }
    }
    memory
}

#[cfg(test)]
mod tests {
    use super::{from_smaps, is_server_shared_memory};

    #[test]
    fn server_shared_memory_is_told_from_the_backends_own() {
        assert!(is_server_shared_memory("/dev/zero (deleted)"));
        assert!(is_server_shared_memory("/dev/shm/PostgreSQL.3200486254"));
        assert!(!is_server_shared_memory("[heap]"));
        assert!(!is_server_shared_memory("/work/main/.cluster/data/pg_recsys/model-17922-1.safetensors"));
    }

    #[test]
    fn private_memory_leaves_out_server_shared_memory_and_counts_shared_file_pages_within() {
        let smaps = "\
55d0c4a00000-55d0c9000000 rw-p 00000000 00:00 0                          [heap]
Rss:               71000 kB
Private_Clean:         0 kB
Private_Dirty:     70000 kB
7f00a0000000-7f0120000000 rw-s 00000000 00:01 1025                       /dev/zero (deleted)
Rss:              160000 kB
Shared_Dirty:       9000 kB
Private_Clean:         0 kB
Private_Dirty:    150000 kB
7f0130000000-7f0138000000 r--s 00000000 fe:01 77                         /srv/data/pg_recsys/model-17922-1.safetensors
Rss:              135000 kB
Private_Clean:    135000 kB
Private_Dirty:         0 kB
";
        let memory = from_smaps(smaps);
        assert_eq!(memory.rss_kb, 366_000);
        assert_eq!(memory.private_kb, 205_000, "heap and the shared file's pages, not the server's shared memory");
        assert_eq!(memory.shared_file_kb, 135_000);
        assert_eq!(memory.server_shared_kb, 150_000);
    }
}
