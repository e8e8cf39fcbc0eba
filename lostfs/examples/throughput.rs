//! Throughput of lostfs against the plain directory it passes through, side
//! by side in one run: a dd-style sequential write ending in one fsync, and a
//! WAL-style loop of 4 KiB appends each followed by fdatasync.
//!
//! cargo run -p lostfs --profile ci --example throughput [-- DIR]
//! (root, /dev/fuse; DIR defaults to a temporary directory under /tmp)

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEQ_BYTES: usize = 256 << 20;
const SEQ_BLOCK: usize = 1 << 20;
const WAL_RECORDS: usize = 2000;
const ROUNDS: usize = 5;

fn sequential(dir: &Path) -> f64 {
    let p = dir.join("seq");
    let block = vec![0x5au8; SEQ_BLOCK];
    let t = Instant::now();
    let mut f = File::create(&p).unwrap();
    for _ in 0..SEQ_BYTES / SEQ_BLOCK {
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&p).unwrap();
    SEQ_BYTES as f64 / secs / (1 << 20) as f64
}

fn wal(dir: &Path) -> f64 {
    let p = dir.join("wal");
    let record = vec![0xa5u8; 4096];
    File::create(&p).unwrap().sync_all().unwrap();
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    let t = Instant::now();
    for _ in 0..WAL_RECORDS {
        f.write_all(&record).unwrap();
        f.sync_data().unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&p).unwrap();
    WAL_RECORDS as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn mounted(p: &Path) -> bool {
    let want = p.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

fn main() {
    let root: PathBuf = match std::env::args().nth(1) {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("lostfs-bench-{}", std::process::id())),
    };
    let (plain, backing, mnt) = (root.join("plain"), root.join("backing"), root.join("mnt"));
    for d in [&plain, &backing, &mnt] {
        std::fs::create_dir_all(d).unwrap();
    }
    let sock = root.join("control.sock");
    let server = {
        let (backing, mnt, sock) = (backing.clone(), mnt.clone(), sock.clone());
        std::thread::spawn(move || lostfs::mount(&backing, &mnt, &sock, lostfs::Options::default()))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mounted(&mnt) {
        assert!(
            Instant::now() < deadline,
            "lostfs did not mount {}",
            mnt.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut seq, mut wals) = ([vec![], vec![]], [vec![], vec![]]);
    for round in 0..ROUNDS {
        // Alternate which goes first: the disk's state carries over.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let dir = [&plain, &mnt][i];
            seq[i].push(sequential(dir));
            wals[i].push(wal(dir));
        }
    }
    lostfs::unmount(&mnt).unwrap();
    let _ = server.join();
    let _ = std::fs::remove_dir_all(&root);
    let [sp, sl] = seq.map(median);
    let [wp, wl] = wals.map(median);
    println!("medians of {ROUNDS} rounds, plain directory vs lostfs on the same filesystem:");
    println!(
        "sequential {} MiB in 1 MiB writes + fsync: plain {sp:.0} MiB/s, lostfs {sl:.0} MiB/s, lostfs/plain {:.2}",
        SEQ_BYTES >> 20,
        sl / sp
    );
    println!(
        "WAL {WAL_RECORDS} x (4 KiB append + fdatasync): plain {wp:.0} ops/s, lostfs {wl:.0} ops/s, lostfs/plain {:.2}",
        wl / wp
    );
}
