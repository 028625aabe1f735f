//! A compact canonical binary encoding of any `Serialize` value, for the history digest.
//!
//! The digest used to turn every entry into a `serde_json::Value`, then into text, then hash it,
//! after the run — more than half of a swarm's wall time. This encoder writes straight into a
//! reusable byte buffer, with no allocation per value: every item is a one-byte tag followed by
//! fixed-width little-endian numbers, length-prefixed strings, and terminated sequences, maps
//! and structs. It is unambiguous (a different value gives different bytes) and depends only on
//! the values, never on addresses or hash order, so the same run digests the same in any
//! process. JSON stays for export and repro bundles.

use serde::ser::{self, Serialize};
use std::fmt;

/// Append the canonical encoding of `v` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    v.serialize(&mut Encoder { out })
        .expect("canonical encoding cannot fail");
}

/// Encoding error (never produced by the encoder itself; required by serde for custom errors).
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}
impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

mod tag {
    pub const BOOL: u8 = 1;
    pub const UINT: u8 = 2;
    pub const INT: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const CHAR: u8 = 5;
    pub const STR: u8 = 6;
    pub const BYTES: u8 = 7;
    pub const NONE: u8 = 8;
    pub const SOME: u8 = 9;
    pub const UNIT: u8 = 10;
    pub const VARIANT: u8 = 11;
    pub const SEQ: u8 = 12;
    pub const MAP: u8 = 13;
    pub const STRUCT: u8 = 14;
    pub const END: u8 = 15;
    pub const UINT128: u8 = 16;
    pub const INT128: u8 = 17;
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    fn str(&mut self, s: &str) {
        self.out.push(tag::STR);
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }
    fn uint(&mut self, v: u64) {
        self.out.push(tag::UINT);
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn int(&mut self, v: i64) {
        self.out.push(tag::INT);
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn variant(&mut self, name: &str) {
        self.out.push(tag::VARIANT);
        self.str(name);
    }
}

impl<'a, 'b> ser::Serializer for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.extend_from_slice(&[tag::BOOL, v as u8]);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.int(v.into());
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.int(v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.out.push(tag::INT128);
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.uint(v.into());
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.uint(v.into());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.uint(v.into());
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.uint(v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.out.push(tag::UINT128);
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.out.push(tag::FLOAT);
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.out.push(tag::CHAR);
        self.out.extend_from_slice(&(v as u32).to_le_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.str(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.out.push(tag::BYTES);
        self.out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(tag::NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.out.push(tag::SOME);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push(tag::UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.variant(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Error> {
        self.out.push(tag::SEQ);
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        self.out.push(tag::SEQ);
        Ok(self)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        self.out.push(tag::SEQ);
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.variant(variant);
        self.out.push(tag::SEQ);
        Ok(self)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, Error> {
        self.out.push(tag::MAP);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        self.out.push(tag::STRUCT);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.variant(variant);
        self.out.push(tag::STRUCT);
        Ok(self)
    }
}

macro_rules! seq_like {
    ($trait:ident, $method:ident) => {
        impl<'a, 'b> ser::$trait for &'a mut Encoder<'b> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Error> {
                self.out.push(tag::END);
                Ok(())
            }
        }
    };
}
seq_like!(SerializeSeq, serialize_element);
seq_like!(SerializeTuple, serialize_element);
seq_like!(SerializeTupleStruct, serialize_field);
seq_like!(SerializeTupleVariant, serialize_field);

impl<'a, 'b> ser::SerializeMap for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        self.out.push(tag::END);
        Ok(())
    }
}

macro_rules! struct_like {
    ($trait:ident) => {
        impl<'a, 'b> ser::$trait for &'a mut Encoder<'b> {
            type Ok = ();
            type Error = Error;
            // Fields by position, not by name: a struct's fields come in its declared order,
            // so within one binary the position names the field (the digest promises
            // identity for the same seed and binary only). The names were a third of the
            // bytes hashed. Nothing here serialises untagged or flattened enums, whose
            // variants only their field names would tell apart.
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                value.serialize(&mut **self)
            }
            fn skip_field(&mut self, _key: &'static str) -> Result<(), Error> {
                // A skipped field still marks its place, so `None`-skipped and absent differ
                // from a present value.
                self.out.push(tag::UNIT);
                Ok(())
            }
            fn end(self) -> Result<(), Error> {
                self.out.push(tag::END);
                Ok(())
            }
        }
    };
}
struct_like!(SerializeStruct);
struct_like!(SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Ev {
        A { x: u64, s: String },
        B { v: Vec<u32>, o: Option<i8> },
        C,
    }

    fn enc<T: Serialize>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(v, &mut out);
        out
    }

    #[test]
    fn different_values_encode_differently() {
        let all = [
            enc(&Ev::A {
                x: 1,
                s: "ab".into(),
            }),
            enc(&Ev::A {
                x: 1,
                s: "a".into(),
            }),
            enc(&Ev::A {
                x: 2,
                s: "ab".into(),
            }),
            enc(&Ev::B {
                v: vec![1, 2],
                o: None,
            }),
            enc(&Ev::B {
                v: vec![1],
                o: Some(2),
            }),
            enc(&Ev::B {
                v: vec![12],
                o: None,
            }),
            enc(&Ev::C),
            enc(&("a", "b")),
            enc(&("ab", "")),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    /// Fields are encoded by position (no names), so a skipped field must still hold its
    /// place: which of two optional fields is set stays visible.
    #[test]
    fn skipped_fields_keep_their_place() {
        #[derive(Serialize)]
        struct Opt {
            #[serde(skip_serializing_if = "Option::is_none")]
            a: Option<u8>,
            #[serde(skip_serializing_if = "Option::is_none")]
            b: Option<u8>,
        }
        let first = enc(&Opt {
            a: Some(1),
            b: None,
        });
        let second = enc(&Opt {
            a: None,
            b: Some(1),
        });
        assert_ne!(first, second);
        assert_ne!(enc(&Opt { a: None, b: None }), first);
    }

    #[test]
    fn same_value_same_bytes() {
        let m: BTreeMap<String, u64> = [("b".to_string(), 2), ("a".to_string(), 1)].into();
        assert_eq!(enc(&m), enc(&m.clone()));
        assert_eq!(enc(&1.5f64), enc(&1.5f64));
    }
}
