//! A streaming zip container writer: entries are written front to back, never revisited.
//!
//! Each entry's local header carries the data-descriptor flag, so its CRC-32 and sizes follow the
//! data (known only once the data is written); the writer never seeks, so the archive can be
//! hashed as it is written. ZIP64 is used per entry when its size could pass 4 GiB, and for the
//! central directory when offsets, sizes or the entry count need it (APPNOTE 4.3.9, 4.5.3,
//! 4.3.14–4.3.15). Names are UTF-8 (flag bit 11). The compressed bytes themselves come from
//! the caller (see `pack`), which is what lets several threads compress at once.

use std::io::{self, Write};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const ZIP64_END_OF_CENTRAL: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EXTRA: u16 = 0x0001;
const FLAGS: u16 = (1 << 3) | (1 << 11);
const U32_MAX: u64 = 0xFFFF_FFFF;

/// How an entry's data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Stored,
    Deflated,
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Method::Stored => 0,
            Method::Deflated => 8,
        }
    }
}

/// An entry as the central directory will describe it.
#[derive(Debug, Clone)]
struct Central {
    name: Vec<u8>,
    method: Method,
    dos_time: u16,
    dos_date: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    offset: u64,
    zip64: bool,
    directory: bool,
}

/// Writes a zip archive to `W`, counting every byte.
#[derive(Debug)]
pub struct ZipStreamWriter<W: Write> {
    out: W,
    position: u64,
    entries: Vec<Central>,
    open: Option<Central>,
}

fn le16(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}
fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}
fn le64(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// DOS date and time (local-time-less: UTC) of a Unix time in seconds; 1980-01-01 at the earliest.
pub fn dos_time(unix_seconds: i64) -> (u16, u16) {
    let secs = unix_seconds.max(315_532_800); // 1980-01-01T00:00:00Z
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).min(2107);
    let time = ((day_secs / 3600) << 11) | (((day_secs / 60) % 60) << 5) | ((day_secs % 60) / 2);
    let date = ((year - 1980) << 9) | (month << 5) | day;
    (
        u16::try_from(time).unwrap_or(0),
        u16::try_from(date).unwrap_or(0),
    )
}

impl<W: Write> ZipStreamWriter<W> {
    pub fn new(out: W) -> ZipStreamWriter<W> {
        ZipStreamWriter {
            out,
            position: 0,
            entries: Vec::new(),
            open: None,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    /// Starts a file entry. `size_hint` is its uncompressed size, to decide ZIP64 up front.
    pub fn start_file(
        &mut self,
        name: &str,
        method: Method,
        unix_mtime: i64,
        size_hint: u64,
        force_zip64: bool,
    ) -> io::Result<()> {
        self.start(
            name.as_bytes().to_vec(),
            method,
            unix_mtime,
            size_hint,
            force_zip64,
            false,
        )
    }

    /// Adds a directory entry (`name` ends with `/`).
    pub fn add_directory(&mut self, name: &str, unix_mtime: i64) -> io::Result<()> {
        self.start(
            name.as_bytes().to_vec(),
            Method::Stored,
            unix_mtime,
            0,
            false,
            true,
        )?;
        self.finish_entry(0, 0, 0)
    }

    fn start(
        &mut self,
        name: Vec<u8>,
        method: Method,
        unix_mtime: i64,
        size_hint: u64,
        force_zip64: bool,
        directory: bool,
    ) -> io::Result<()> {
        if self.open.is_some() {
            return Err(io::Error::other("an entry is still open"));
        }
        let name_len = u16::try_from(name.len())
            .map_err(|_| io::Error::other("entry name longer than 65535 bytes"))?;
        // Deflate can exceed the input slightly; leave a margin below 4 GiB.
        let zip64 = force_zip64 || size_hint >= U32_MAX - (1 << 24);
        let (dos_time, dos_date) = dos_time(unix_mtime);
        let mut header = Vec::with_capacity(30 + name.len() + 20);
        header.extend(le32(LOCAL_HEADER));
        header.extend(le16(if zip64 { 45 } else { 20 }));
        header.extend(le16(FLAGS));
        header.extend(le16(method.code()));
        header.extend(le16(dos_time));
        header.extend(le16(dos_date));
        header.extend(le32(0)); // CRC-32: in the data descriptor
        let size_field = if zip64 { 0xFFFF_FFFF } else { 0 };
        header.extend(le32(size_field));
        header.extend(le32(size_field));
        header.extend(le16(name_len));
        header.extend(le16(if zip64 { 20 } else { 0 }));
        header.extend(&name);
        if zip64 {
            header.extend(le16(ZIP64_EXTRA));
            header.extend(le16(16));
            header.extend(le64(0));
            header.extend(le64(0));
        }
        let offset = self.position;
        self.put(&header)?;
        self.open = Some(Central {
            name,
            method,
            dos_time,
            dos_date,
            crc: 0,
            compressed: 0,
            uncompressed: 0,
            offset,
            zip64,
            directory,
        });
        Ok(())
    }

    /// Writes (already compressed) data of the open entry.
    pub fn write_data(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.open.is_none() {
            return Err(io::Error::other("no entry is open"));
        }
        self.put(bytes)
    }

    /// Ends the open entry with its CRC-32 and sizes.
    pub fn finish_entry(&mut self, crc: u32, compressed: u64, uncompressed: u64) -> io::Result<()> {
        let mut entry = self
            .open
            .take()
            .ok_or_else(|| io::Error::other("no entry is open"))?;
        if !entry.zip64 && (compressed >= U32_MAX || uncompressed >= U32_MAX) {
            return Err(io::Error::other("an entry grew past 4 GiB without ZIP64"));
        }
        entry.crc = crc;
        entry.compressed = compressed;
        entry.uncompressed = uncompressed;
        let mut descriptor = Vec::with_capacity(24);
        descriptor.extend(le32(DATA_DESCRIPTOR));
        descriptor.extend(le32(crc));
        if entry.zip64 {
            descriptor.extend(le64(compressed));
            descriptor.extend(le64(uncompressed));
        } else {
            descriptor.extend(le32(compressed as u32));
            descriptor.extend(le32(uncompressed as u32));
        }
        self.put(&descriptor)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Writes the central directory and the end records; returns the writer and the total size.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        if self.open.is_some() {
            return Err(io::Error::other("an entry is still open"));
        }
        let central_start = self.position;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let big_sizes = e.zip64 || e.compressed >= U32_MAX || e.uncompressed >= U32_MAX;
            let big_offset = e.offset >= U32_MAX;
            let mut extra = Vec::new();
            if big_sizes {
                extra.extend(le64(e.uncompressed));
                extra.extend(le64(e.compressed));
            }
            if big_offset {
                extra.extend(le64(e.offset));
            }
            let mut h = Vec::with_capacity(46 + e.name.len() + extra.len() + 4);
            h.extend(le32(CENTRAL_HEADER));
            h.extend(le16((3 << 8) | 45)); // made by: Unix, spec 4.5
            h.extend(le16(if big_sizes || big_offset { 45 } else { 20 }));
            h.extend(le16(FLAGS));
            h.extend(le16(e.method.code()));
            h.extend(le16(e.dos_time));
            h.extend(le16(e.dos_date));
            h.extend(le32(e.crc));
            h.extend(le32(if big_sizes {
                0xFFFF_FFFF
            } else {
                e.compressed as u32
            }));
            h.extend(le32(if big_sizes {
                0xFFFF_FFFF
            } else {
                e.uncompressed as u32
            }));
            h.extend(le16(e.name.len() as u16));
            h.extend(le16(if extra.is_empty() {
                0
            } else {
                4 + extra.len() as u16
            }));
            h.extend(le16(0)); // comment
            h.extend(le16(0)); // disk
            h.extend(le16(0)); // internal attributes
            let unix_mode: u32 = if e.directory { 0o040755 } else { 0o100644 };
            h.extend(le32((unix_mode << 16) | (u32::from(e.directory) * 0x10)));
            h.extend(le32(if big_offset {
                0xFFFF_FFFF
            } else {
                e.offset as u32
            }));
            h.extend(&e.name);
            if !extra.is_empty() {
                h.extend(le16(ZIP64_EXTRA));
                h.extend(le16(extra.len() as u16));
                h.extend(&extra);
            }
            self.put(&h)?;
        }
        let central_size = self.position - central_start;
        let count = entries.len() as u64;
        let zip64_end = count >= 0xFFFF || central_size >= U32_MAX || central_start >= U32_MAX;
        if zip64_end {
            let record_at = self.position;
            let mut r = Vec::with_capacity(56 + 20);
            r.extend(le32(ZIP64_END_OF_CENTRAL));
            r.extend(le64(44));
            r.extend(le16((3 << 8) | 45));
            r.extend(le16(45));
            r.extend(le32(0));
            r.extend(le32(0));
            r.extend(le64(count));
            r.extend(le64(count));
            r.extend(le64(central_size));
            r.extend(le64(central_start));
            r.extend(le32(ZIP64_LOCATOR));
            r.extend(le32(0));
            r.extend(le64(record_at));
            r.extend(le32(1));
            self.put(&r)?;
        }
        let mut end = Vec::with_capacity(22);
        end.extend(le32(END_OF_CENTRAL));
        end.extend(le16(0));
        end.extend(le16(0));
        let short_count = if zip64_end { 0xFFFF } else { count as u16 };
        end.extend(le16(short_count));
        end.extend(le16(short_count));
        end.extend(le32(if zip64_end {
            0xFFFF_FFFF
        } else {
            central_size as u32
        }));
        end.extend(le32(if zip64_end {
            0xFFFF_FFFF
        } else {
            central_start as u32
        }));
        end.extend(le16(0));
        self.put(&end)?;
        self.out.flush()?;
        Ok((self.out, self.position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};

    fn archive(force_zip64: bool) -> Vec<u8> {
        let mut w = ZipStreamWriter::new(Vec::new());
        w.add_directory("Files/", 1_580_461_920).expect("dir");
        let data = b"hello, zip";
        let mut crc = crc32fast::Hasher::new();
        crc.update(data);
        w.start_file(
            "Files/hello.txt",
            Method::Stored,
            1_580_461_920,
            data.len() as u64,
            force_zip64,
        )
        .expect("start");
        w.write_data(data).expect("data");
        w.finish_entry(crc.finalize(), data.len() as u64, data.len() as u64)
            .expect("finish");
        let text = "ünïcødé ".repeat(100);
        let mut deflated = Vec::new();
        let mut enc =
            flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::new(6));
        enc.write_all(text.as_bytes()).expect("deflate");
        enc.finish().expect("finish deflate");
        let mut crc = crc32fast::Hasher::new();
        crc.update(text.as_bytes());
        w.start_file(
            "naïve — name.txt",
            Method::Deflated,
            0,
            text.len() as u64,
            force_zip64,
        )
        .expect("start");
        w.write_data(&deflated).expect("data");
        w.finish_entry(crc.finalize(), deflated.len() as u64, text.len() as u64)
            .expect("finish");
        w.finish().expect("finish").0
    }

    #[test]
    fn the_zip_crate_reads_what_we_write_with_and_without_zip64() {
        for force in [false, true] {
            let bytes = archive(force);
            let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("a valid archive");
            assert_eq!(zip.len(), 3);
            let mut text = String::new();
            zip.by_name("naïve — name.txt")
                .expect("entry")
                .read_to_string(&mut text)
                .expect("inflates, CRC ok");
            assert_eq!(text, "ünïcødé ".repeat(100));
            let mut hello = String::new();
            zip.by_name("Files/hello.txt")
                .expect("entry")
                .read_to_string(&mut hello)
                .expect("reads");
            assert_eq!(hello, "hello, zip");
            assert!(zip.by_name("Files/").expect("dir").is_dir());
        }
    }

    #[test]
    fn dos_times() {
        assert_eq!(dos_time(0), (0, (1 << 5) | 1), "clamped to 1980-01-01");
        // 2020-01-31T09:12:00Z
        assert_eq!(
            dos_time(1_580_461_920),
            ((9 << 11) | (12 << 5), ((2020 - 1980) << 9) | (1 << 5) | 31)
        );
    }
}
