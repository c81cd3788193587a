use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{Error, OversizedPublish, Packet, Publish};
use crate::mqttbytes::{parse_fixed_header, FixedHeader, PacketType};

/// MQTT v4 codec
#[derive(Debug, Clone)]
pub struct Codec {
    /// Maximum packet size allowed by client
    pub max_incoming_size: usize,
    /// Maximum packet size allowed by broker
    pub max_outgoing_size: usize,
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
    pub fn new(max_incoming_size: usize, max_outgoing_size: usize) -> Codec {
        Codec {
            max_incoming_size,
            max_outgoing_size,
            skipping: None,
        }
    }

    /// Starts skipping the oversized packet at the start of `src` once its head (fixed header,
    /// topic, packet id) is buffered; only a PUBLISH is skipped, any other oversized packet is
    /// still an error.
    fn skip_oversized(&mut self, src: &mut BytesMut, size: usize) -> Result<(), Error> {
        let header = parse_fixed_header(src.iter())?;
        if header.packet_type()? != PacketType::Publish {
            return Err(Error::PayloadSizeLimitExceeded(size));
        }
        let head = publish_head_len(src, &header)?;
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

/// Length of a PUBLISH up to its payload: fixed header, topic and (QoS > 0) packet id.
/// `InsufficientBytes` until `src` holds the topic's length.
fn publish_head_len(src: &[u8], header: &FixedHeader) -> Result<usize, Error> {
    let topic_at = header.fixed_header_len;
    if src.len() < topic_at + 2 {
        return Err(Error::InsufficientBytes(topic_at + 2 - src.len()));
    }
    let topic_len = u16::from_be_bytes([src[topic_at], src[topic_at + 1]]) as usize;
    let pkid_len = if header.byte1 & 0b0110 == 0 { 0 } else { 2 };
    let head = topic_at + 2 + topic_len + pkid_len;
    if head > header.frame_length() {
        return Err(Error::MalformedPacket);
    }
    if src.len() < head {
        return Err(Error::InsufficientBytes(head - src.len()));
    }
    Ok(head)
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
                Err(Error::PayloadSizeLimitExceeded(size)) => {
                    match self.skip_oversized(src, size) {
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
    use crate::{mqttbytes::Error, Packet, PubAck, Publish, QoS, SubAck, SubscribeReasonCode};

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
        let mut codec = Codec::new(1024, 1024);
        let mut bytes = BytesMut::new();
        let mut big = Publish::new("cmd/big", QoS::AtLeastOnce, vec![b'a'; 200_000]);
        big.pkid = 7;
        big.retain = true;
        let big_size = big.write(&mut bytes).unwrap();
        let mut small = Publish::new("cmd/small", QoS::AtLeastOnce, vec![b'b'; 10]);
        small.pkid = 8;
        small.write(&mut bytes).unwrap();
        PubAck::new(3).write(&mut bytes).unwrap();

        let (packets, most) = decode_in_chunks(&mut codec, &bytes, 1000);
        assert!(most <= 2000, "kept {most} bytes buffered");
        let mut expected_big = Publish::new("cmd/big", QoS::AtLeastOnce, Vec::new());
        expected_big.pkid = 7;
        expected_big.retain = true;
        match &packets[..] {
            [Ok(Packet::OversizedPublish(oversized)), Ok(Packet::Publish(next)), Ok(Packet::PubAck(ack))] =>
            {
                assert_eq!(oversized.publish, expected_big);
                assert_eq!(oversized.size, big_size);
                assert_eq!(next, &small);
                assert_eq!(ack.pkid, 3);
            }
            other => panic!("unexpected {other:?}"),
        }

        // Read in one piece, the same.
        let (packets, _) = decode_in_chunks(&mut codec, &bytes, bytes.len());
        assert_eq!(packets.len(), 3);
        assert!(matches!(packets[0], Ok(Packet::OversizedPublish(_))));
    }

    #[test]
    fn oversized_packets_other_than_publish_are_still_errors() {
        let mut codec = Codec::new(1024, 1024);
        let mut bytes = BytesMut::new();
        SubAck::new(1, vec![SubscribeReasonCode::Success(QoS::AtMostOnce); 2000])
            .write(&mut bytes)
            .unwrap();
        let (packets, _) = decode_in_chunks(&mut codec, &bytes, 1000);
        assert_eq!(
            packets,
            vec![Err(Error::PayloadSizeLimitExceeded(2002).to_string())]
        );
    }

    #[test]
    fn a_malformed_oversized_publish_is_an_error() {
        let mut codec = Codec::new(16, 1024);
        // PUBLISH QoS 1, remaining length 100, topic length 200: the topic would end past the
        // packet.
        let mut bytes = vec![0b0011_0010, 100, 0, 200];
        bytes.resize(102, b'x');
        let (packets, _) = decode_in_chunks(&mut codec, &bytes, 1000);
        assert_eq!(packets, vec![Err(Error::MalformedPacket.to_string())]);
    }

    #[test]
    fn outgoing_max_packet_size_check() {
        let mut buf = BytesMut::new();
        let mut codec = Codec::new(100, 200);

        let mut small_publish = Publish::new("hello/world", QoS::AtLeastOnce, vec![1; 100]);
        small_publish.pkid = 1;
        codec
            .encode(Packet::Publish(small_publish), &mut buf)
            .unwrap();

        let large_publish = Publish::new("hello/world", QoS::AtLeastOnce, vec![1; 265]);
        match codec.encode(Packet::Publish(large_publish), &mut buf) {
            Err(Error::OutgoingPacketTooLarge {
                pkt_size: 281,
                max: 200,
            }) => {}
            _ => unreachable!(),
        }
    }
}
