//! The three Rijndael variants KMS uses, built on RustCrypto's AES round
//! functions (`aes::hazmat`), plus CBC, PKCS#7 and the v4 CBC-MAC.
//!
//! - R160: Rijndael with a 160-bit key (Nk 5, 11 rounds): the v4 MAC.
//! - A5: plain AES-128: v5.
//! - A6: AES-128 whose expanded key has three bytes tweaked: v6.
//!
//! The stock `aes::Aes128` cannot express R160 or A6 (it owns its key
//! schedule), so the schedule is expanded here and the rounds are RustCrypto's.

use aes::hazmat::{cipher_round, equiv_inv_cipher_round, inv_mix_columns, mix_columns};

pub type Block = [u8; 16];

/// v4 MAC key (160 bits).
const KEY_V4: [u8; 20] = [
    0x05, 0x3D, 0x83, 0x07, 0xF9, 0xE5, 0xF0, 0x88, 0xEB, 0x5E, 0xA6, 0x68, 0x6C, 0xF0, 0x37, 0xC7,
    0xE4, 0xEF, 0xD2, 0xD6,
];
const KEY_V5: [u8; 16] = [
    0xCD, 0x7E, 0x79, 0x6F, 0x2A, 0xB2, 0x5D, 0xCB, 0x55, 0xFF, 0xC8, 0xEF, 0x83, 0x64, 0xC4, 0x70,
];
const KEY_V6: [u8; 16] = [
    0xA9, 0x4A, 0x41, 0x95, 0xE2, 0x01, 0x43, 0x2D, 0x9B, 0xCB, 0x46, 0x04, 0x05, 0xD8, 0x4A, 0x21,
];
/// The v6 tweak: (round key, value XORed into its first byte).
const V6_TWEAK: [(usize, u8); 3] = [(4, 0x73), (6, 0x09), (8, 0xE4)];
const RCON: [u8; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36];
const MAX_ROUNDS: usize = 11;

/// An expanded Rijndael key: round keys for encryption and, derived from the
/// same (possibly tweaked) keys, for the equivalent inverse cipher.
pub struct Cipher {
    rounds: usize,
    enc: [Block; MAX_ROUNDS + 1],
    /// InvMixColumns of round keys 1..rounds-1, for AESDEC-style decryption.
    dec_mid: [Block; MAX_ROUNDS + 1],
}

impl Cipher {
    /// R160: the v4 MAC cipher.
    pub fn v4() -> Self {
        Self::expand(&KEY_V4, &[])
    }

    /// A5: AES-128 with the v5 key.
    pub fn v5() -> Self {
        Self::expand(&KEY_V5, &[])
    }

    /// A6: AES-128 with the v6 key and the schedule tweak.
    pub fn v6() -> Self {
        Self::expand(&KEY_V6, &V6_TWEAK)
    }

    /// Standard Rijndael key expansion for a 16- or 20-byte key, then `tweak`.
    fn expand(key: &[u8], tweak: &[(usize, u8)]) -> Self {
        let nk = key.len() / 4;
        let rounds = nk + 6;
        let total_words = 4 * (rounds + 1);
        let mut words = [[0u8; 4]; 4 * (MAX_ROUNDS + 1)];
        for (i, word) in words.iter_mut().take(nk).enumerate() {
            word.copy_from_slice(&key[4 * i..4 * i + 4]);
        }
        for i in nk..total_words {
            let mut t = words[i - 1];
            if i % nk == 0 {
                t.rotate_left(1);
                t = sub_word(t);
                t[0] ^= RCON[i / nk - 1];
            }
            for b in 0..4 {
                words[i][b] = words[i - nk][b] ^ t[b];
            }
        }
        let mut enc = [[0u8; 16]; MAX_ROUNDS + 1];
        for (r, round_key) in enc.iter_mut().take(rounds + 1).enumerate() {
            for w in 0..4 {
                round_key[4 * w..4 * w + 4].copy_from_slice(&words[4 * r + w]);
            }
        }
        for &(round, value) in tweak {
            enc[round][0] ^= value;
        }
        let mut dec_mid = [[0u8; 16]; MAX_ROUNDS + 1];
        for r in 1..rounds {
            let mut k = enc[r].into();
            inv_mix_columns(&mut k);
            dec_mid[r] = k.into();
        }
        Cipher {
            rounds,
            enc,
            dec_mid,
        }
    }

    #[cfg(test)]
    pub fn round_key(&self, r: usize) -> Block {
        self.enc[r]
    }

    pub fn encrypt_block(&self, block: &mut Block) {
        xor(block, &self.enc[0]);
        let mut state = (*block).into();
        for r in 1..self.rounds {
            cipher_round(&mut state, &self.enc[r].into());
        }
        // Last round has no MixColumns: run a full round with a zero key and
        // undo its MixColumns.
        cipher_round(&mut state, &[0u8; 16].into());
        inv_mix_columns(&mut state);
        *block = state.into();
        xor(block, &self.enc[self.rounds]);
    }

    pub fn decrypt_block(&self, block: &mut Block) {
        xor(block, &self.enc[self.rounds]);
        let mut state = (*block).into();
        for r in (1..self.rounds).rev() {
            equiv_inv_cipher_round(&mut state, &self.dec_mid[r].into());
        }
        // Last inverse round has no InvMixColumns.
        equiv_inv_cipher_round(&mut state, &[0u8; 16].into());
        mix_columns(&mut state);
        *block = state.into();
        xor(block, &self.enc[0]);
    }

    /// CBC encryption in place; `data` must be whole blocks.
    pub fn cbc_encrypt(&self, iv: &Block, data: &mut [u8]) {
        debug_assert_eq!(data.len() % 16, 0);
        let mut chain = *iv;
        for chunk in data.chunks_exact_mut(16) {
            let block: &mut Block = chunk.try_into().expect("16-byte chunk");
            xor(block, &chain);
            self.encrypt_block(block);
            chain = *block;
        }
    }

    /// CBC decryption in place; `data` must be whole blocks.
    pub fn cbc_decrypt(&self, iv: &Block, data: &mut [u8]) {
        debug_assert_eq!(data.len() % 16, 0);
        let mut chain = *iv;
        for chunk in data.chunks_exact_mut(16) {
            let block: &mut Block = chunk.try_into().expect("16-byte chunk");
            let cipher_text = *block;
            self.decrypt_block(block);
            xor(block, &chain);
            chain = cipher_text;
        }
    }
}

/// SubWord of the key expansion, using the AES round's SubBytes. Row 0 of the
/// state (bytes 0, 4, 8, 12) is not moved by ShiftRows, so the word goes there.
fn sub_word(word: [u8; 4]) -> [u8; 4] {
    let mut state = [0u8; 16];
    for (i, b) in word.iter().enumerate() {
        state[4 * i] = *b;
    }
    let mut block = state.into();
    cipher_round(&mut block, &[0u8; 16].into());
    inv_mix_columns(&mut block);
    let out: Block = block.into();
    [out[0], out[4], out[8], out[12]]
}

pub fn xor(a: &mut Block, b: &Block) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// The v4 "hash": CBC-MAC under R160 with 0x80 bit padding and a zero IV.
pub fn v4_mac(cipher: &Cipher, message: &[u8]) -> Block {
    let mut mac = [0u8; 16];
    let mut blocks = message.chunks_exact(16);
    for block in blocks.by_ref() {
        xor(&mut mac, block.try_into().expect("16-byte chunk"));
        cipher.encrypt_block(&mut mac);
    }
    let rest = blocks.remainder();
    let mut last = [0u8; 16];
    last[..rest.len()].copy_from_slice(rest);
    last[rest.len()] = 0x80;
    xor(&mut mac, &last);
    cipher.encrypt_block(&mut mac);
    mac
}

/// Appends PKCS#7 padding (always 1..=16 bytes).
pub fn pkcs7_pad(data: &mut Vec<u8>) {
    let pad = 16 - data.len() % 16;
    data.resize(data.len() + pad, pad as u8);
}

/// Length of `data` without its PKCS#7 padding, or `None` if the padding is invalid.
pub fn pkcs7_unpadded_len(data: &[u8]) -> Option<usize> {
    let &pad = data.last()?;
    let pad = pad as usize;
    if pad == 0 || pad > 16 || pad > data.len() {
        return None;
    }
    data[data.len() - pad..]
        .iter()
        .all(|&b| b as usize == pad)
        .then(|| data.len() - pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{BlockCipherEncrypt, KeyInit};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn enc_zero(c: &Cipher) -> Block {
        let mut b = [0u8; 16];
        c.encrypt_block(&mut b);
        b
    }

    #[test]
    fn r160_matches_the_spec_vectors() {
        let c = Cipher::v4();
        assert_eq!(
            c.round_key(0).to_vec(),
            h("053d8307f9e5f088eb5ea6686cf037c7")
        );
        assert_eq!(
            c.round_key(1).to_vec(),
            h("e4efd2d6db88756e226d85e6c933238e")
        );
        assert_eq!(
            c.round_key(11).to_vec(),
            h("4a7d08d621ed8fd1454df13ba968579d")
        );
        assert_eq!(enc_zero(&c).to_vec(), h("933030f10e2e7782b80915d5778a4957"));
    }

    #[test]
    fn a5_is_stock_aes128() {
        let c = Cipher::v5();
        assert_eq!(
            c.round_key(10).to_vec(),
            h("aa20a23d6a7693cd0c7eb589e541336f")
        );
        assert_eq!(enc_zero(&c).to_vec(), h("ec7c7e75b1923978eac4b2d2260235d5"));
        let oracle = aes::Aes128::new(&KEY_V5.into());
        let mut block = *b"kms-edge testing";
        let mut expected = block.into();
        oracle.encrypt_block(&mut expected);
        c.encrypt_block(&mut block);
        assert_eq!(block.to_vec(), expected.to_vec());
    }

    #[test]
    fn a6_applies_the_schedule_tweak() {
        let c = Cipher::v6();
        assert_eq!(
            c.round_key(4).to_vec(),
            h("0530e12e111e2b4d3f6a5901edca6094")
        );
        assert_eq!(
            c.round_key(6).to_vec(),
            h("63dec9456920217355b4904484ea41e7")
        );
        assert_eq!(
            c.round_key(8).to_vec(),
            h("efc82943cfb5552a5e7cb9074b5f14cd")
        );
        assert_eq!(
            c.round_key(10).to_vec(),
            h("a0625e9bb0e59f41fe1ee79cfbba8b8c")
        );
        assert_eq!(enc_zero(&c).to_vec(), h("8ca59de0c483c04aa7026a22d6dd208e"));
    }

    #[test]
    fn decryption_inverts_encryption_for_every_variant() {
        for c in [Cipher::v4(), Cipher::v5(), Cipher::v6()] {
            let original: Block = *b"0123456789abcdef";
            let mut b = original;
            c.encrypt_block(&mut b);
            assert_ne!(b, original);
            c.decrypt_block(&mut b);
            assert_eq!(b, original);
            let mut data = b"thirty-two bytes of cbc plaintxt".to_vec();
            let iv = [7u8; 16];
            c.cbc_encrypt(&iv, &mut data);
            c.cbc_decrypt(&iv, &mut data);
            assert_eq!(&data, b"thirty-two bytes of cbc plaintxt");
        }
    }

    #[test]
    fn v4_mac_matches_the_spec_vectors() {
        let c = Cipher::v4();
        assert_eq!(
            v4_mac(&c, b"").to_vec(),
            h("d144963029e2bd12f9970c9f52b27f09")
        );
        assert_eq!(
            v4_mac(&c, &[0u8; 16]).to_vec(),
            h("2a090d7c1155251ab86445447d060335")
        );
    }

    #[test]
    fn pkcs7_always_pads_and_rejects_bad_padding() {
        let mut v = vec![1u8; 16];
        pkcs7_pad(&mut v);
        assert_eq!(v.len(), 32);
        assert_eq!(pkcs7_unpadded_len(&v), Some(16));
        let mut w = vec![1u8; 13];
        pkcs7_pad(&mut w);
        assert_eq!(&w[13..], &[3, 3, 3]);
        assert_eq!(pkcs7_unpadded_len(&[1, 2, 3, 0]), None);
        assert_eq!(pkcs7_unpadded_len(&[2, 2, 1, 2]), None);
        assert_eq!(pkcs7_unpadded_len(&[]), None);
    }
}
