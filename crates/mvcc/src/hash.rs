//! CRC-32C (Castagnoli), the checksum behind `HashKV`.
//!
//! Members compare these hashes to detect divergence, so the hash must depend
//! only on replicated state; see [`crate::Store::hash_kv`] for what is fed in.
//! A table-driven implementation is plenty: hashing is rare and runs over
//! data already being read from disk.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82f6_3b78;

/// Byte-at-a-time lookup table, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// A running CRC-32C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crc32c {
    /// The inverted running remainder.
    state: u32,
}

impl Crc32c {
    /// A checksum of nothing yet.
    pub fn new() -> Self {
        Crc32c { state: !0 }
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.state;
        for &b in bytes {
            crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
        }
        self.state = crc;
    }

    /// The checksum of everything fed so far.
    pub fn finish(&self) -> u32 {
        !self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published CRC-32C check values.
    #[test]
    fn known_values() {
        let cases: &[(&[u8], u32)] = &[
            (b"", 0),
            (b"123456789", 0xe306_9283),
            (&[0u8; 32], 0x8a91_36aa),
            (&[0xffu8; 32], 0x62a8_ab43),
        ];
        for &(input, want) in cases {
            let mut c = Crc32c::new();
            c.update(input);
            assert_eq!(c.finish(), want, "{input:?}");
            // Feeding in pieces gives the same result.
            let mut c = Crc32c::new();
            for chunk in input.chunks(5) {
                c.update(chunk);
            }
            assert_eq!(c.finish(), want);
        }
    }
}
