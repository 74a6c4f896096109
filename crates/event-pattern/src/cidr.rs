//! `cidr` patterns: an IPv4 or IPv6 network an address must fall in.

use std::net::IpAddr;

use crate::PatternError;

#[derive(Clone, Debug)]
pub(crate) struct Cidr {
    network: IpAddr,
    bits: u8,
}

fn to_bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Result<Self, PatternError> {
        let mut parts = text.split('/');
        let (Some(address), Some(mask), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(PatternError::new("Malformed CIDR, one '/' required"));
        };
        let bits: u8 = mask
            .parse()
            .map_err(|_| PatternError::new("Malformed CIDR, mask bits must be an integer"))?;
        let network: IpAddr = address
            .parse()
            .map_err(|_| PatternError::new(format!("Nonstandard IP address: {address}")))?;
        let width = to_bits(network).1;
        if bits > width {
            return Err(PatternError::new(format!(
                "Malformed CIDR, mask bits must be between 0 and {width}"
            )));
        }
        Ok(Cidr { network, bits })
    }

    pub(crate) fn contains(&self, address: &str) -> bool {
        let Ok(ip) = address.parse::<IpAddr>() else {
            return false;
        };
        let (net, width) = to_bits(self.network);
        let (value, value_width) = to_bits(ip);
        if width != value_width {
            return false;
        }
        if self.bits == 0 {
            return true;
        }
        let shift = u32::from(width - self.bits);
        let full = u32::from(width);
        // Compare the top `bits` bits of a `width`-bit number.
        let mask = if full == 128 {
            u128::MAX << shift
        } else {
            ((1u128 << full) - 1) & (u128::MAX << shift)
        };
        net & mask == value & mask
    }
}
