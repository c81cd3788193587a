//! `rooms`: N simulated Rooms on one bridge; time until every availability is `online`, RSS.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use crate::common::{Broker, Usage, connect, recv_until, rss_mb};
use crate::report::Line;
use crate::under_test::{Running, bridge_options, start_bridge, stop_bridge};
use crate::{BRIDGE_THREADS, PIN, Settings};

pub async fn rooms(s: &Settings, rt: &Handle, lines: &mut Vec<Line>) {
    let mut line = Line::new("rooms");
    for &n in &s.rooms {
        let mut broker = Broker::start(s.broker_nodelay);
        let rss_before = rss_mb();
        let sims = match SimRoom::start_many(
            n,
            SimConfig {
                pin: Some(PIN.into()),
                ..SimConfig::default()
            },
        )
        .await
        {
            Ok(sims) => sims,
            Err(e) => {
                println!("rooms: cannot start {n} simulated rooms: {e}; skipped");
                continue;
            }
        };
        let rss_sims = rss_mb();
        let (sub, mut rx) = connect(s.client(
            broker.port,
            "bench-availability",
            &["trueconf/+/availability"],
        ))
        .await;
        let entries: Vec<(String, u16)> = sims
            .iter()
            .enumerate()
            .map(|(i, sim)| (format!("room{}", i + 1), sim.http_port()))
            .collect();
        let cpu0 = Usage::of(BRIDGE_THREADS);
        let t0 = Instant::now();
        let running = start_bridge(rt, bridge_options(s, broker.port, &entries));
        let deadline = t0 + s.rooms_timeout;
        let mut online: HashMap<String, bool> = HashMap::new();
        let mut count = 0;
        let mut next_report = t0 + Duration::from_secs(5);
        while count < n {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_report {
                next_report += Duration::from_secs(5);
                let stats = running.bridge.link().stats();
                let links = links_up(&running, &entries);
                println!(
                    "rooms: {n} rooms, {:>3.0} s: {count} online on MQTT, {links} Room links up, {} published, {} dropped by the outbox",
                    now.duration_since(t0).as_secs_f64(),
                    stats.published.load(std::sync::atomic::Ordering::Relaxed),
                    stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
                );
            }
            let Some(m) = recv_until(&mut rx, deadline.min(next_report)).await else {
                continue;
            };
            let up = m.payload.as_ref() == b"online";
            let was = online.insert(m.topic, up).unwrap_or(false);
            match (was, up) {
                (false, true) => count += 1,
                (true, false) => count -= 1,
                _ => {}
            }
        }
        let elapsed = t0.elapsed();
        let cpu = Usage::of(BRIDGE_THREADS).since(cpu0);
        let links_online = links_up(&running, &entries);
        let published = published_count(&running);
        // Let the retained state and discovery settle before reading the memory.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_all = rss_mb();
        let k = format!("rooms{n}_");
        line.put(format!("{k}online"), count as f64);
        line.put(format!("{k}online_us"), elapsed.as_nanos() as f64 / 1000.0);
        line.put(format!("{k}links_online"), links_online as f64);
        line.put(format!("{k}published"), published as f64);
        line.put(
            format!("{k}outbox_dropped"),
            running
                .bridge
                .link()
                .stats()
                .dropped
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        line.put(format!("{k}rss_mb"), rss_all);
        line.put(format!("{k}sim_rss_mb"), rss_sims);
        line.put(format!("{k}bridge_rss_delta_mb"), rss_all - rss_sims);
        line.put(format!("{k}startup_cpu_us"), cpu.cpu_ns as f64 / 1000.0);
        line.put(format!("{k}rss_before_mb"), rss_before);
        if count < n {
            println!(
                "rooms: only {count} of {n} rooms online after {:?}",
                s.rooms_timeout
            );
        }

        // A broker restart: the new broker holds nothing, so the bridge must notice, reconnect
        // (after its backoff) and republish discovery and state. Timed from the moment the new
        // broker accepts connections until every room's availability is back.
        let _ = sub.disconnect().await;
        drop(rx);
        let published0 = published_count(&running);
        broker.restart();
        let t1 = Instant::now();
        let (_sub, mut rx) = connect(s.client(
            broker.port,
            "bench-availability-after-restart",
            &["trueconf/+/availability"],
        ))
        .await;
        let deadline = t1 + s.rooms_timeout;
        let mut back: HashMap<String, bool> = HashMap::new();
        while back.values().filter(|up| **up).count() < n {
            let Some(m) = recv_until(&mut rx, deadline).await else {
                break;
            };
            back.insert(m.topic, m.payload.as_ref() == b"online");
        }
        let republished = back.values().filter(|up| **up).count();
        let republish = t1.elapsed();
        line.put(format!("{k}republished"), republished as f64);
        line.put(
            format!("{k}republish_us"),
            republish.as_nanos() as f64 / 1000.0,
        );
        line.put(
            format!("{k}republish_msgs"),
            published_count(&running).saturating_sub(published0) as f64,
        );
        if republished < n {
            println!("rooms: only {republished} of {n} rooms back after the broker restart");
        }
        stop_bridge(rt, running).await;
        drop(sims);
        drop(broker);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    line.print();
    lines.push(line);
}

/// Rooms whose Room link is up.
fn links_up(running: &Running, entries: &[(String, u16)]) -> usize {
    entries
        .iter()
        .filter(|(id, _)| {
            running
                .bridge
                .room(id)
                .is_some_and(|c| c.link().borrow().is_online())
        })
        .count()
}

/// Messages the bridge has handed to the broker so far.
fn published_count(running: &Running) -> u64 {
    running
        .bridge
        .link()
        .stats()
        .published
        .load(std::sync::atomic::Ordering::Relaxed)
}
