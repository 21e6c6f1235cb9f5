//! A kernel Image compressed for the VMM to embed (`Image.zlib`), where the
//! board's loader leaves too little room for it as it is. The VMM inflates
//! it with the same crate (`miniz_oxide`, no allocation there), so the
//! stream is inflated here once and compared before it is written: a
//! stream the VMM would refuse never reaches its image.

use miniz_oxide::deflate::compress_to_vec_zlib;
use miniz_oxide::inflate::decompress_to_vec_zlib;

/// The best compression miniz_oxide offers without its slowest mode.
const LEVEL: u8 = 9;

/// `data` as a zlib stream (RFC 1950), checked to inflate back to it.
pub fn compress(data: &[u8]) -> Result<Vec<u8>, String> {
    let stream = compress_to_vec_zlib(data, LEVEL);
    match decompress_to_vec_zlib(&stream) {
        Ok(back) if back == data => Ok(stream),
        Ok(_) => Err("the zlib stream inflates to other bytes".into()),
        Err(e) => Err(format!("the zlib stream does not inflate: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_inflates_back_and_is_smaller_for_a_redundant_input() {
        let data: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8 ^ (n / 4096) as u8).collect();
        let stream = compress(&data).unwrap();
        assert!(stream.len() < data.len() / 4);
        assert_eq!(stream[0] & 0x0f, 8, "a zlib header, method deflate");
        assert_eq!(decompress_to_vec_zlib(&stream).unwrap(), data);
    }
}
