//! A fixed-capacity byte buffer on the stack, a writer into a caller's buffer, and decimal integers
//! formatted on the stack: for joining repeated fields, building a signature base and writing the
//! store's records, where the library must not allocate.

use core::mem::MaybeUninit;

use crate::code::Code;

/// Bytes written in order into a caller's buffer (a record, an envelope); `n` so far. Writing past
/// its end is `InvalidArgument`: the caller's buffer was too small.
pub(crate) struct Out<'a> {
    pub(crate) buf: &'a mut [u8],
    pub(crate) n: usize,
}

impl<'a> Out<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Out<'a> {
        Out { buf, n: 0 }
    }

    pub(crate) fn put(&mut self, b: &[u8]) -> Result<(), Code> {
        let end = self.n + b.len();
        self.buf
            .get_mut(self.n..end)
            .ok_or(Code::InvalidArgument)?
            .copy_from_slice(b);
        self.n = end;
        Ok(())
    }
}

/// Up to `N` bytes written in place; pushing past `N` is an error (the input was too large).
/// The bytes are not initialised until written, so that making one costs nothing.
pub struct Buf<const N: usize> {
    data: MaybeUninit<[u8; N]>,
    /// Bytes `..len` of `data` are initialised.
    len: usize,
}

impl<const N: usize> Default for Buf<N> {
    #[inline(always)]
    fn default() -> Self {
        // Written as a struct literal, LLVM merges `len = 0` and the uninitialised array into one
        // memset of the whole buffer. Initialising only `len` keeps the buffer truly untouched.
        let mut buf = MaybeUninit::<Buf<N>>::uninit();
        // SAFETY: `data` may stay uninitialised (it is MaybeUninit) and `len` is written before
        // assume_init, so every field is valid.
        unsafe {
            core::ptr::addr_of_mut!((*buf.as_mut_ptr()).len).write(0);
            buf.assume_init()
        }
    }
}

impl<const N: usize> Buf<N> {
    /// Appends `bytes`; `HeaderTooLarge` (and nothing appended) when they do not fit.
    #[inline]
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Code> {
        if bytes.len() > N - self.len {
            return Err(Code::HeaderTooLarge);
        }
        // SAFETY: len + bytes.len() <= N, checked above, so the copy stays inside `data`.
        unsafe {
            let dst = self.data.as_mut_ptr().cast::<u8>().add(self.len);
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
        }
        self.len += bytes.len();
        Ok(())
    }

    #[inline]
    pub fn byte(&mut self, b: u8) -> Result<(), Code> {
        if self.len == N {
            return Err(Code::HeaderTooLarge);
        }
        // SAFETY: len < N, checked above.
        unsafe { self.data.as_mut_ptr().cast::<u8>().add(self.len).write(b) };
        self.len += 1;
        Ok(())
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: bytes ..len were written by push (the invariant on `len`); u8 has no invalid values.
        unsafe { core::slice::from_raw_parts(self.data.as_ptr().cast::<u8>(), self.len) }
    }

    /// Bytes `start..end` written so far.
    pub fn range(&self, start: usize, end: usize) -> &[u8] {
        &self.as_slice()[start..end]
    }
}

/// Up to `N` bytes kept in place with their length: a signature header's value, a delivery's id,
/// event or status, written without allocating. The C ABI's structs copy them out flat.
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Text {
            bytes: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Text<N> {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Writes the text with `f`, which fills the buffer from its start and says how many bytes it
    /// wrote; on an error the text is left as it was (its length unchanged).
    pub(crate) fn fill(
        &mut self,
        f: impl FnOnce(&mut [u8; N]) -> Result<usize, Code>,
    ) -> Result<(), Code> {
        let n = f(&mut self.bytes)?;
        self.len = n.min(N);
        Ok(())
    }

    /// The whole buffer (bytes past the text are zero or stale) and the text's length.
    pub fn raw(&self) -> (&[u8; N], usize) {
        (&self.bytes, self.len)
    }
}

/// `n` in decimal, written at the end of `buf`; no allocation (signing and RFC 8941 integers).
pub(crate) fn format_i64(n: i64, buf: &mut [u8; 24]) -> &[u8] {
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_integers() {
        let mut b = [0u8; 24];
        assert_eq!(format_i64(0, &mut b), b"0");
        assert_eq!(format_i64(1649955772, &mut b), b"1649955772");
        assert_eq!(format_i64(i64::MIN, &mut b), b"-9223372036854775808");
    }
}
