//! Insertion into the sorted tables of a VM (memslots, guest_memfd
//! bindings).

use heapless::Vec;

/// Inserts `x` at index `i` of `v` (at the end if `i` is past it), moving
/// what was there up one place: `Vec::insert`'s effect, made by one push
/// and swaps of one element each. A model checker follows those far more
/// cheaply than `Vec::insert`'s move of a symbolic number of elements,
/// which made the Kani proofs of both tables run out of memory. On a
/// full `v`, gives `x` back and changes nothing.
pub(crate) fn insert_at<T, const N: usize>(v: &mut Vec<T, N>, i: usize, x: T) -> Result<(), T> {
    v.push(x)?;
    for j in (i + 1..v.len()).rev() {
        v.swap(j - 1, j);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_like_vec_insert_and_refuses_when_full() {
        for i in 0..=3 {
            let mut v: Vec<u8, 4> = Vec::from_slice(&[1, 2, 3]).unwrap_or_default();
            let mut w = v.clone();
            assert_eq!(insert_at(&mut v, i, 9), Ok(()));
            assert_eq!(w.insert(i, 9), Ok(()));
            assert_eq!(v, w);
            assert_eq!(insert_at(&mut v, i, 7), Err(7));
            assert_eq!(v, w);
        }
    }
}
