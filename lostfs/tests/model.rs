//! Random operations on a real mount against a model of what a power cut
//! keeps: after every crash the mount must show exactly the model's durable
//! state. Seeds are printed; a failure names its seed and step.

mod common;

use common::Mount;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Names map to inodes; data belongs to inodes. Data is durable per inode
/// at its fsync; names at any fsync (ext4's journal).
#[derive(Default, Clone)]
struct Model {
    names: BTreeMap<&'static str, u32>,
    data: BTreeMap<u32, Vec<u8>>,
    durable_names: BTreeMap<&'static str, u32>,
    durable_data: BTreeMap<u32, Vec<u8>>,
    next: u32,
}

impl Model {
    fn after_crash(&self) -> BTreeMap<&'static str, Vec<u8>> {
        self.durable_names
            .iter()
            .map(|(n, i)| (*n, self.durable_data.get(i).cloned().unwrap_or_default()))
            .collect()
    }

    fn crash(&mut self) {
        self.names = self.durable_names.clone();
        self.data = self.durable_data.clone();
        for (_, ino) in self.names.iter() {
            self.data.entry(*ino).or_default();
        }
        self.durable_data = self.data.clone();
    }
}

fn run(seed: u64, steps: usize) {
    let m = Mount::new();
    let mut rng = Rng(seed | 1);
    let mut model = Model::default();
    for step in 0..steps {
        let name = NAMES[rng.below(NAMES.len() as u64) as usize];
        let p = m.path(name);
        let exists = model.names.contains_key(name);
        let what = rng.below(100);
        let ctx = format!("seed {seed} step {step} op {what} on {name}");
        match what {
            0..=14 if !exists => {
                fs::File::create(&p).unwrap();
                model.names.insert(name, model.next);
                model.data.insert(model.next, vec![]);
                model.next += 1;
            }
            0..=39 if exists => {
                let ino = model.names[name];
                let d = model.data.get_mut(&ino).unwrap();
                let off = rng.below(d.len() as u64 + 64) as usize;
                let len = 1 + rng.below(300) as usize;
                let byte = b'A' + rng.below(26) as u8;
                let f = fs::OpenOptions::new().write(true).open(&p).expect(&ctx);
                f.write_all_at(&vec![byte; len], off as u64).expect(&ctx);
                if d.len() < off + len {
                    d.resize(off + len, 0);
                }
                d[off..off + len].fill(byte);
            }
            40..=49 if exists => {
                let ino = model.names[name];
                let d = model.data.get_mut(&ino).unwrap();
                let size = rng.below(d.len() as u64 + 32) as usize;
                let f = fs::OpenOptions::new().write(true).open(&p).expect(&ctx);
                f.set_len(size as u64).expect(&ctx);
                d.resize(size, 0);
            }
            50..=64 if exists => {
                let ino = model.names[name];
                fs::File::open(&p).and_then(|f| f.sync_all()).expect(&ctx);
                model.durable_data.insert(ino, model.data[&ino].clone());
                model.durable_names = model.names.clone();
            }
            65..=69 => {
                fs::File::open(&m.mnt)
                    .and_then(|f| f.sync_all())
                    .expect(&ctx);
                model.durable_names = model.names.clone();
            }
            70..=77 if exists => {
                fs::remove_file(&p).expect(&ctx);
                model.names.remove(name);
            }
            78..=89 if exists => {
                let to = NAMES[rng.below(NAMES.len() as u64) as usize];
                fs::rename(&p, m.path(to)).expect(&ctx);
                let ino = model.names.remove(name).unwrap();
                model.names.insert(to, ino);
            }
            90..=95 => {
                m.ctl("crash");
                model.crash();
                check(&m, &model.after_crash(), &ctx);
            }
            _ => {}
        }
    }
    m.ctl("crash");
    check(
        &m,
        &model.after_crash(),
        &format!("seed {seed} final crash"),
    );
}

fn check(m: &Mount, want: &BTreeMap<&'static str, Vec<u8>>, ctx: &str) {
    let mut got = BTreeMap::new();
    for e in fs::read_dir(&m.mnt).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        got.insert(name, fs::read(e.path()).unwrap());
    }
    let want: BTreeMap<String, Vec<u8>> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    if got != want {
        let show = |m: &BTreeMap<String, Vec<u8>>| {
            m.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}:{}:{}",
                        v.len(),
                        String::from_utf8_lossy(&v[..v.len().min(12)])
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        panic!(
            "{ctx}: after crash\n got  {}\n want {}",
            show(&got),
            show(&want)
        );
    }
}

#[test]
fn random_operations_survive_crashes_exactly_as_the_model_says() {
    for seed in 1..=8u64 {
        run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 400);
    }
}
