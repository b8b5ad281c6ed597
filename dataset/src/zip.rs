//! A ZIP writer for exports: entries are stored (frames are PNG, already
//! compressed), written one after another to any `Write` (a file, an upload),
//! with nothing but the central directory kept in memory. Every timestamp is
//! the ZIP epoch and every attribute fixed, so the same entries in the same
//! order give the same bytes. ZIP64 records are written only when an archive
//! needs them (over 65,534 entries or 4 GiB), which Python's `zipfile`,
//! `unzip` and Java read.

use std::io::{self, Read, Write};

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
/// 1980-01-01 00:00:00 in MS-DOS form.
const DOS_DATE: u16 = (1 << 5) | 1;
const DOS_TIME: u16 = 0;
/// Names are UTF-8.
const FLAGS: u16 = 1 << 11;
/// Made by Unix, spec 4.5; a regular file, rw-r--r--.
const MADE_BY: u16 = (3 << 8) | 45;
const FILE_MODE: u32 = 0o100_644 << 16;

struct Entry<'a> {
    name: &'a str,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Counts what goes through, for offsets.
struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Counted<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Why an entry was refused.
fn bad_name(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("archive entry name {name:?} must be a relative path without '..'"),
    )
}

pub struct ZipWriter<W: Write> {
    out: Counted<W>,
    /// The central directory, record by record as entries are added, spooled
    /// to a temporary file so memory stays flat however many entries there are.
    central: Option<io::BufWriter<std::fs::File>>,
    central_size: u64,
    count: u64,
}

impl<W: Write> ZipWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: Counted {
                inner: out,
                written: 0,
            },
            central: None,
            central_size: 0,
            count: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.out.written
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds an entry held in memory.
    pub fn add(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.header(name, crc32fast::hash(data), data.len() as u64)?;
        self.out.put(data)
    }

    /// Adds an entry of `size` bytes read from `data` whose CRC-32 the caller
    /// knows (from a first pass over a temporary file), copying in chunks.
    pub fn add_reader(
        &mut self,
        name: &str,
        crc: u32,
        size: u64,
        data: &mut impl Read,
    ) -> io::Result<()> {
        self.header(name, crc, size)?;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let want = buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let got = data.read(&mut buffer[..want])?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{name}: the source ended {left} bytes early"),
                ));
            }
            self.out.put(&buffer[..got])?;
            left -= got as u64;
        }
        Ok(())
    }

    fn header(&mut self, name: &str, crc: u32, size: u64) -> io::Result<()> {
        if name.is_empty()
            || name.starts_with('/')
            || name.contains('\\')
            || name.split('/').any(|s| s == ".." || s == ".")
            || name.len() > usize::from(u16::MAX)
        {
            return Err(bad_name(name));
        }
        let big = size >= u64::from(u32::MAX);
        let mut h = Vec::with_capacity(30 + name.len() + 20);
        put32(&mut h, LOCAL);
        put16(&mut h, if big { 45 } else { 20 });
        put16(&mut h, FLAGS);
        put16(&mut h, 0);
        put16(&mut h, DOS_TIME);
        put16(&mut h, DOS_DATE);
        put32(&mut h, crc);
        let small = if big { u32::MAX } else { size as u32 };
        put32(&mut h, small);
        put32(&mut h, small);
        put16(&mut h, name.len() as u16);
        put16(&mut h, if big { 20 } else { 0 });
        h.extend_from_slice(name.as_bytes());
        if big {
            put16(&mut h, 1);
            put16(&mut h, 16);
            put64(&mut h, size);
            put64(&mut h, size);
        }
        let record = central_record(&Entry {
            name,
            crc,
            size,
            offset: self.out.written,
        });
        let central = match &mut self.central {
            Some(central) => central,
            None => self.central.insert(io::BufWriter::with_capacity(
                256 * 1024,
                tempfile::tempfile()?,
            )),
        };
        central.write_all(&record)?;
        self.central_size += record.len() as u64;
        self.count += 1;
        self.out.put(&h)
    }

    /// Writes the central directory and the end records; returns the output
    /// and the archive's length.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let start = self.out.written;
        if let Some(central) = self.central.take() {
            let mut file = central.into_inner().map_err(|e| e.into_error())?;
            io::Seek::seek(&mut file, io::SeekFrom::Start(0))?;
            let copied = io::copy(&mut file, &mut self.out.inner)?;
            debug_assert_eq!(copied, self.central_size);
            self.out.written += copied;
        }
        let end = self.out.written;
        let (count, cd_size) = (self.count, end - start);
        let zip64 = count >= u64::from(u16::MAX)
            || start >= u64::from(u32::MAX)
            || cd_size >= u64::from(u32::MAX);
        let mut t = Vec::new();
        if zip64 {
            put32(&mut t, END64);
            put64(&mut t, 44);
            put16(&mut t, MADE_BY);
            put16(&mut t, 45);
            put32(&mut t, 0);
            put32(&mut t, 0);
            put64(&mut t, count);
            put64(&mut t, count);
            put64(&mut t, cd_size);
            put64(&mut t, start);
            put32(&mut t, LOCATOR64);
            put32(&mut t, 0);
            put64(&mut t, end);
            put32(&mut t, 1);
        }
        let clamp16 = |v: u64| if zip64 { u16::MAX } else { v as u16 };
        let clamp32 = |v: u64| if zip64 { u32::MAX } else { v as u32 };
        put32(&mut t, END);
        put16(&mut t, 0);
        put16(&mut t, 0);
        put16(&mut t, clamp16(count));
        put16(&mut t, clamp16(count));
        put32(&mut t, clamp32(cd_size));
        put32(&mut t, clamp32(start));
        put16(&mut t, 0);
        self.out.put(&t)?;
        self.out.inner.flush()?;
        let length = self.out.written;
        Ok((self.out.inner, length))
    }
}

/// An entry's record in the central directory.
fn central_record(e: &Entry<'_>) -> Vec<u8> {
    let (big_size, big_offset) = (
        e.size >= u64::from(u32::MAX),
        e.offset >= u64::from(u32::MAX),
    );
    let mut extra = Vec::new();
    if big_size || big_offset {
        let fields = 8 * (2 * usize::from(big_size) + usize::from(big_offset));
        put16(&mut extra, 1);
        put16(&mut extra, fields as u16);
        if big_size {
            put64(&mut extra, e.size);
            put64(&mut extra, e.size);
        }
        if big_offset {
            put64(&mut extra, e.offset);
        }
    }
    let mut h = Vec::with_capacity(46 + e.name.len() + extra.len());
    put32(&mut h, CENTRAL);
    put16(&mut h, MADE_BY);
    put16(&mut h, if extra.is_empty() { 20 } else { 45 });
    put16(&mut h, FLAGS);
    put16(&mut h, 0);
    put16(&mut h, DOS_TIME);
    put16(&mut h, DOS_DATE);
    put32(&mut h, e.crc);
    let size = if big_size { u32::MAX } else { e.size as u32 };
    put32(&mut h, size);
    put32(&mut h, size);
    put16(&mut h, e.name.len() as u16);
    put16(&mut h, extra.len() as u16);
    put16(&mut h, 0);
    put16(&mut h, 0);
    put16(&mut h, 0);
    put32(&mut h, FILE_MODE);
    put32(
        &mut h,
        if big_offset {
            u32::MAX
        } else {
            e.offset as u32
        },
    );
    h.extend_from_slice(e.name.as_bytes());
    h.extend_from_slice(&extra);
    h
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = ZipWriter::new(Vec::new());
        for (name, data) in entries {
            zip.add(name, data).unwrap();
        }
        let (bytes, length) = zip.finish().unwrap();
        assert_eq!(bytes.len() as u64, length);
        bytes
    }

    /// Python's zipfile reads the archive back: names, contents (CRC checked).
    fn python_reads(bytes: &[u8], script: &str) -> String {
        let dir = tempdir();
        let path = dir.join("a.zip");
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import zipfile, sys\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\n{script}"
            ))
            .arg(&path)
            .output()
            .expect("python3 runs");
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "zip-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn archives_read_back_and_are_byte_identical() {
        let entries: &[(&str, &[u8])] = &[
            ("README.txt", b"version 1\n"),
            ("images/train/0001.png", &[0u8, 1, 2, 3, 255]),
            ("labels/train/0001.txt", b"0 0.5 0.5 0.2 0.3\n"),
            ("images/ünïcode.txt", b""),
        ];
        let a = archive(entries);
        assert_eq!(a, archive(entries), "same entries, same bytes");
        let listed = python_reads(
            &a,
            "for i in z.infolist(): print(i.filename, i.file_size, i.date_time[0], z.read(i).hex())",
        );
        assert_eq!(
            listed,
            "README.txt 10 1980 76657273696f6e20310a\n\
             images/train/0001.png 5 1980 00010203ff\n\
             labels/train/0001.txt 18 1980 3020302e3520302e3520302e3220302e330a\n\
             images/ünïcode.txt 0 1980 \n"
        );
    }

    #[test]
    fn entries_copied_from_a_reader_match_and_short_sources_fail() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut zip = ZipWriter::new(Vec::new());
        zip.add_reader(
            "big.bin",
            crc32fast::hash(&data),
            data.len() as u64,
            &mut &data[..],
        )
        .unwrap();
        let (bytes, _) = zip.finish().unwrap();
        assert_eq!(bytes, archive(&[("big.bin", &data)]));
        let mut zip = ZipWriter::new(Vec::new());
        let short = zip.add_reader("x", 0, 10, &mut &b"abc"[..]).unwrap_err();
        assert!(short.to_string().contains("7 bytes early"), "{short}");
    }

    #[test]
    fn names_that_could_escape_are_refused() {
        let mut zip = ZipWriter::new(Vec::new());
        for bad in ["", "/etc/passwd", "a/../b", "a\\b", "./a"] {
            assert!(zip.add(bad, b"x").is_err(), "{bad:?}");
        }
        assert!(zip.is_empty());
    }

    #[test]
    fn more_entries_than_plain_zip_holds_use_zip64_records() {
        let mut zip = ZipWriter::new(Vec::new());
        let n = 70_000;
        for i in 0..n {
            zip.add(&format!("labels/{i:06}.txt"), format!("{i}\n").as_bytes())
                .unwrap();
        }
        assert_eq!(zip.len(), n);
        let (bytes, _) = zip.finish().unwrap();
        let out = python_reads(
            &bytes,
            "n = z.namelist(); print(len(n), n[-1], z.read(n[-1]).decode().strip())",
        );
        assert_eq!(out, format!("{n} labels/069999.txt 69999\n"));
    }
}
