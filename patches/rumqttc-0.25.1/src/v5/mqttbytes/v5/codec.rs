use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{
    length, parse_fixed_header, Error, FixedHeader, OversizedPublish, Packet, PacketType, Publish,
};

/// MQTT v5 codec
#[derive(Debug, Clone)]
pub struct Codec {
    /// Maximum packet size allowed by client
    pub max_incoming_size: Option<u32>,
    /// Maximum packet size allowed by broker
    pub max_outgoing_size: Option<u32>,
    /// An oversized PUBLISH being read past
    skipping: Option<Skipping>,
}

/// The part of an oversized PUBLISH still to be read and dropped, and what to report once it is.
#[derive(Debug, Clone)]
struct Skipping {
    remaining: usize,
    oversized: OversizedPublish,
}

impl Codec {
    pub fn new(max_incoming_size: Option<u32>, max_outgoing_size: Option<u32>) -> Codec {
        Codec {
            max_incoming_size,
            max_outgoing_size,
            skipping: None,
        }
    }

    /// Starts skipping the oversized packet at the start of `src` once its head (fixed header,
    /// topic, packet id, properties) is buffered; only a PUBLISH is skipped, any other
    /// oversized packet is still an error, and so is a PUBLISH whose properties alone exceed
    /// the limit (they would have to be buffered).
    fn skip_oversized(&mut self, src: &mut BytesMut, error: Error) -> Result<(), Error> {
        let header = parse_fixed_header(src.iter())?;
        if header.packet_type()? != PacketType::Publish {
            return Err(error);
        }
        let (head, properties_len) = publish_head_len(src, &header)?;
        if properties_len > self.max_incoming_size.unwrap_or(u32::MAX) as usize {
            return Err(error);
        }
        if src.len() < head {
            return Err(Error::InsufficientBytes(head - src.len()));
        }
        let publish = Publish::read(header, Bytes::copy_from_slice(&src[..head]))?;
        let frame = header.frame_length();
        self.skipping = Some(Skipping {
            remaining: frame,
            oversized: OversizedPublish {
                publish,
                size: frame,
            },
        });
        Ok(())
    }
}

/// Length of a PUBLISH up to its payload (fixed header, topic, packet id if QoS > 0,
/// properties) and of its properties. `InsufficientBytes` until `src` holds the properties'
/// length.
fn publish_head_len(src: &[u8], header: &FixedHeader) -> Result<(usize, usize), Error> {
    let topic_at = header.fixed_header_len;
    if src.len() < topic_at + 2 {
        return Err(Error::InsufficientBytes(topic_at + 2 - src.len()));
    }
    let topic_len = u16::from_be_bytes([src[topic_at], src[topic_at + 1]]) as usize;
    let pkid_len = if header.byte1 & 0b0110 == 0 { 0 } else { 2 };
    let properties_at = topic_at + 2 + topic_len + pkid_len;
    if properties_at >= header.frame_length() {
        return Err(Error::MalformedPacket);
    }
    if src.len() <= properties_at {
        return Err(Error::InsufficientBytes(properties_at + 1 - src.len()));
    }
    let (len_len, properties_len) = length(src[properties_at..].iter())?;
    let head = properties_at + len_len + properties_len;
    if head > header.frame_length() {
        return Err(Error::MalformedPacket);
    }
    Ok((head, properties_len))
}

impl Decoder for Codec {
    type Item = Packet;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        loop {
            // Reading past an oversized PUBLISH: drop what arrived, keep nothing.
            if let Some(skipping) = &mut self.skipping {
                let n = skipping.remaining.min(src.len());
                src.advance(n);
                skipping.remaining -= n;
                if skipping.remaining > 0 {
                    return Ok(None);
                }
                let done = self.skipping.take().map(|s| s.oversized);
                return Ok(done.map(Packet::OversizedPublish));
            }
            return match Packet::read(src, self.max_incoming_size) {
                Ok(packet) => Ok(Some(packet)),
                Err(Error::InsufficientBytes(b)) => {
                    // Get more packets to construct the incomplete packet
                    src.reserve(b);
                    Ok(None)
                }
                Err(error @ Error::PayloadSizeLimitExceeded { .. }) => {
                    match self.skip_oversized(src, error) {
                        Ok(()) => continue,
                        Err(Error::InsufficientBytes(b)) => {
                            src.reserve(b);
                            Ok(None)
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
        }
    }
}

impl Encoder<Packet> for Codec {
    type Error = Error;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), Self::Error> {
        item.write(dst, self.max_outgoing_size)?;

        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    use super::Codec;
    use crate::v5::{
        mqttbytes::{v5::PublishProperties, Error, QoS},
        Packet, Publish,
    };

    /// Feeds `bytes` to the codec in chunks of `chunk` bytes, like reads off a socket, and
    /// returns the packets decoded and the most bytes the codec ever kept buffered.
    fn decode_in_chunks(
        codec: &mut Codec,
        bytes: &[u8],
        chunk: usize,
    ) -> (Vec<Result<Packet, String>>, usize) {
        let mut src = BytesMut::new();
        let mut out = Vec::new();
        let mut most = 0;
        for piece in bytes.chunks(chunk) {
            src.extend_from_slice(piece);
            loop {
                match codec.decode(&mut src) {
                    Ok(Some(packet)) => out.push(Ok(packet)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e.to_string()));
                        return (out, most);
                    }
                }
            }
            most = most.max(src.len());
        }
        (out, most)
    }

    #[test]
    fn oversized_incoming_publish_is_skipped_without_buffering_it() {
        let mut codec = Codec::new(Some(1024), None);
        let properties = PublishProperties {
            response_topic: Some("reply/here".into()),
            correlation_data: Some(vec![1, 2, 3].into()),
            ..PublishProperties::default()
        };
        let mut bytes = BytesMut::new();
        let mut big = Publish::new(
            "cmd/big",
            QoS::ExactlyOnce,
            vec![b'a'; 200_000],
            Some(properties.clone()),
        );
        big.pkid = 9;
        let big_size = big.write(&mut bytes).unwrap();
        let mut small = Publish::new("cmd/small", QoS::AtMostOnce, vec![b'b'; 10], None);
        small.retain = true;
        small.write(&mut bytes).unwrap();

        let (packets, most) = decode_in_chunks(&mut codec, &bytes, 1000);
        assert!(most <= 2000, "kept {most} bytes buffered");
        let mut expected_big = Publish::new("cmd/big", QoS::ExactlyOnce, "", Some(properties));
        expected_big.pkid = 9;
        match &packets[..] {
            [Ok(Packet::OversizedPublish(oversized)), Ok(Packet::Publish(next))] => {
                assert_eq!(oversized.publish, expected_big);
                assert_eq!(oversized.size, big_size);
                assert_eq!(next, &small);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn oversized_publish_properties_are_not_buffered_past_the_limit() {
        let mut codec = Codec::new(Some(1024), None);
        let properties = PublishProperties {
            user_properties: vec![("k".into(), "v".repeat(5000))],
            ..PublishProperties::default()
        };
        let mut bytes = BytesMut::new();
        Publish::new("cmd/big", QoS::AtMostOnce, vec![b'a'; 10], Some(properties))
            .write(&mut bytes)
            .unwrap();
        let (packets, _) = decode_in_chunks(&mut codec, &bytes, 1000);
        assert!(
            matches!(&packets[..], [Err(e)] if e.contains("Max Payload size")),
            "{packets:?}"
        );
    }

    #[test]
    fn outgoing_max_packet_size_check() {
        let mut buf = BytesMut::new();
        let mut codec = Codec::new(Some(100), Some(200));

        let mut small_publish = Publish::new("hello/world", QoS::AtLeastOnce, vec![1; 100], None);
        small_publish.pkid = 1;
        codec
            .encode(Packet::Publish(small_publish), &mut buf)
            .unwrap();

        let large_publish = Publish::new("hello/world", QoS::AtLeastOnce, vec![1; 265], None);
        match codec.encode(Packet::Publish(large_publish), &mut buf) {
            Err(Error::OutgoingPacketTooLarge {
                pkt_size: 282,
                max: 200,
            }) => {}
            _ => unreachable!(),
        }
    }
}
