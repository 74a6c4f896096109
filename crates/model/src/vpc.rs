//! The operator's map of VPC subnets: which private networks a function
//! whose `VpcConfig` names a subnet may reach.

use std::net::Ipv4Addr;

/// One subnet: `[vpc-ID/]subnet-ID=CIDR[,CIDR...]` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetMapping {
    pub subnet_id: String,
    /// The VPC reported in `VpcConfig.VpcId` (empty when not given).
    pub vpc_id: String,
    /// IPv4 networks (address, prefix length), host bits cleared.
    pub networks: Vec<(Ipv4Addr, u8)>,
}

fn id_ok(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    })
}

/// Parses `a.b.c.d/n` (IPv4 only: environments have no IPv6).
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR block (a.b.c.d/n)"))?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| {
        format!("{s:?} is not an IPv4 CIDR block (IPv6 is not offered to functions)")
    })?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("{s:?} has no prefix length between 0 and 32"))?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    Ok((Ipv4Addr::from(u32::from(addr) & mask), prefix))
}

impl std::str::FromStr for SubnetMapping {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ids, cidrs) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected [vpc-ID/]subnet-ID=CIDR[,CIDR...]"))?;
        let (vpc_id, subnet_id) = match ids.split_once('/') {
            Some((v, sn)) => (v, sn),
            None => ("", ids),
        };
        if !id_ok(subnet_id, "subnet-") {
            return Err(format!(
                "{subnet_id:?} is not a subnet id (subnet- and lowercase letters or digits)"
            ));
        }
        if !vpc_id.is_empty() && !id_ok(vpc_id, "vpc-") {
            return Err(format!(
                "{vpc_id:?} is not a VPC id (vpc- and lowercase letters or digits)"
            ));
        }
        let networks = cidrs
            .split(',')
            .map(|c| parse_cidr(c.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            subnet_id: subnet_id.to_owned(),
            vpc_id: vpc_id.to_owned(),
            networks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subnets_with_and_without_a_vpc() {
        let m: SubnetMapping = "vpc-0abc/subnet-01=10.1.2.3/16, 192.168.7.0/24"
            .parse()
            .unwrap();
        assert_eq!(m.vpc_id, "vpc-0abc");
        assert_eq!(m.subnet_id, "subnet-01");
        assert_eq!(
            m.networks,
            [
                (Ipv4Addr::new(10, 1, 0, 0), 16),
                (Ipv4Addr::new(192, 168, 7, 0), 24)
            ]
        );
        let m: SubnetMapping = "subnet-lan=172.16.0.0/12".parse().unwrap();
        assert_eq!(m.vpc_id, "");
        assert_eq!(m.networks, [(Ipv4Addr::new(172, 16, 0, 0), 12)]);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for bad in [
            "subnet-a",
            "subnet-A=10.0.0.0/8",
            "net-a=10.0.0.0/8",
            "subnet-a=10.0.0.0",
            "subnet-a=10.0.0.0/33",
            "subnet-a=fd00::/8",
            "VPC/subnet-a=10.0.0.0/8",
        ] {
            assert!(bad.parse::<SubnetMapping>().is_err(), "{bad}");
        }
    }
}
