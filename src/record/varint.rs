//! LEB128 varints and a bounded cursor over a recording's bytes: every read
//! checks what is left, so a cut or corrupt file is an error that names its
//! offset, never a panic or an allocation sized by a corrupt field.

use super::RecordError;

/// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
pub fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a recording's bytes front to back.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn offset(&self) -> usize {
        self.pos
    }

    /// A corruption found at the current offset.
    pub fn corrupt(&self, what: &'static str) -> RecordError {
        RecordError::Corrupt {
            offset: self.pos,
            what,
        }
    }

    fn truncated(&self, what: &'static str) -> RecordError {
        RecordError::Truncated {
            offset: self.pos,
            what,
        }
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordError> {
        if n > self.remaining() {
            return Err(self.truncated(what));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, RecordError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, RecordError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn f64_le(&mut self, what: &'static str) -> Result<f64, RecordError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    pub fn varint(&mut self, what: &'static str) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8(what)?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.corrupt("varint overflows 64 bits"));
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt("varint longer than 10 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        let values = [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX];
        let mut bytes = Vec::new();
        for v in values {
            write_varint(&mut bytes, v);
        }
        let mut cur = Cursor::new(&bytes);
        for v in values {
            assert_eq!(cur.varint("v").unwrap(), v);
        }
        assert_eq!(cur.remaining(), 0);
        assert_eq!(bytes[..4], [0, 1, 127, 0x80]);
    }

    #[test]
    fn bad_varints_are_errors() {
        // Eleven continuation bytes.
        let long = [0x80u8; 11];
        assert!(matches!(
            Cursor::new(&long).varint("v"),
            Err(RecordError::Corrupt { .. })
        ));
        // Bit 64 set.
        let mut over = [0xffu8; 10];
        over[9] = 0x02;
        assert!(matches!(
            Cursor::new(&over).varint("v"),
            Err(RecordError::Corrupt { .. })
        ));
        assert!(matches!(
            Cursor::new(&[0x80]).varint("v"),
            Err(RecordError::Truncated { offset: 1, .. })
        ));
        assert!(Cursor::new(&[1, 2, 3]).u32_le("x").is_err());
    }
}
