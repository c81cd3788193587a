#!/usr/bin/env python3
"""Drive the trueconf2mqtt Room simulator with TrueConf's official Python client.

Proves the simulator speaks the protocol the way an independently written client expects:
port discovery through config.json, PIN auth, commands without requestId, handler filters
(every key the official client's filters require must be present), events.

Usage: official_client.py <path to trueconf2mqtt binary>
Prints one line per check and a closing "N passed, M failed" line; exits non-zero on failure.
"""
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time

import trueconf_room

PIN = "4321"
checks = {"passed": 0, "failed": 0}


def check(name, condition, detail=""):
    if condition:
        checks["passed"] += 1
        print(f"ok   {name}")
    else:
        checks["failed"] += 1
        print(f"FAIL {name} {detail}")


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class Simulator:
    """`trueconf2mqtt simulate` as a child process, driven through its stdin."""

    def __init__(self, binary):
        self.proc = subprocess.Popen(
            [binary, "simulate", "--pin", PIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        line = self.proc.stdout.readline().strip()
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        if not line.startswith("listening") or "http" not in fields:
            raise RuntimeError(f"unexpected simulator output: {line!r}")
        self.http_port = int(fields["http"])
        self.ws_port = int(fields["ws"])
        self.lock = threading.Lock()

    def control(self, command):
        with self.lock:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            return self.proc.stdout.readline().strip()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main():
    logging.disable(logging.CRITICAL)  # the client logs a lot; our checks speak for themselves
    binary = os.path.abspath(sys.argv[1])
    os.chdir(tempfile.mkdtemp())  # the official client writes videosdk.log into the cwd
    sim = Simulator(binary)
    seen = []
    try:
        room = trueconf_room.open_session(ip="127.0.0.1", port=sim.http_port, pin=PIN)
        check("config.json discovery found the WebSocket port", room.wsPort == sim.ws_port,
              f"{room.wsPort} != {sim.ws_port}")
        check("config.json discovery found the HTTP port", room.http_port == sim.http_port)
        check("PIN auth reaches the ready state", wait_for(room.isReady))
        check("HTTP token kept from the auth reply", bool(room.getTokenForHttpServer()))
        check("getAppState reply updates the client's state", wait_for(lambda: room.getAppState() == 3),
              f"appState={room.getAppState()}")
        check("getSystemInfo reply stored", wait_for(lambda: bool(room.systemInfo)))
        check("getSettings reply stored", wait_for(lambda: bool(room.settings)))
        check("getMonitorsInfo reply stored", wait_for(lambda: bool(room.monitors_info)))

        @room.handler({"event": "audioCapturerMute", "mute": None})
        def on_mic(response):
            seen.append(("mic", response["mute"]))

        @room.handler({"event": "inviteReceived", "peerId": None})
        def on_invite(response):
            seen.append(("invite", response["peerId"]))

        @room.handler({"method": "getMicMute", "mute": None})
        def on_get_mic(response):
            seen.append(("getMicMute", response["mute"]))

        @room.handler({"event": "incomingChatMessage", "message": None})
        def on_chat(response):
            seen.append(("chat", response["message"]))

        room.methods.setMicMute(True)
        check("setMicMute fires the audioCapturerMute handler", wait_for(lambda: ("mic", True) in seen), str(seen))
        room.methods.getMicMute()
        check("getMicMute reply reaches its handler", wait_for(lambda: ("getMicMute", True) in seen), str(seen))

        check("simulator control: incoming call", sim.control("incoming 1 bob@sim.trueconf.local Bob") == "ok")
        check("inviteReceived handler fires", wait_for(lambda: ("invite", "bob@sim.trueconf.local") in seen), str(seen))
        check("state is 4 while ringing", wait_for(lambda: room.getAppState() == 4))
        room.methods.accept()
        check("accept leads to the conference state", wait_for(lambda: room.getAppState() == 5))
        check("client fetched the conference on state 5", wait_for(lambda: room.current_conference is not None))

        check("simulator control: chat", sim.control("chat 1 bob@sim.trueconf.local hello room") == "ok")
        check("incomingChatMessage handler fires", wait_for(lambda: ("chat", "hello room") in seen), str(seen))

        # The room panel (issue 17): slides and recording consent through the client's own
        # methods and handler filters.
        @room.handler({"event": "mySlideShowStarted", "title": None, "currentSlideIndex": None})
        def on_slides(response):
            seen.append(("slides", response["title"]))

        @room.handler({"event": "currentSlideIndexChanged", "currentIdx": None})
        def on_slide(response):
            seen.append(("slide", response["currentIdx"]))

        @room.handler({"event": "recordRequest", "peerId": None, "peerDn": None, "confId": None})
        def on_record(response):
            seen.append(("record", response["peerId"]))

        @room.handler({"event": "recordRequestReply", "peerId": None, "recordAllowed": None, "confId": None})
        def on_record_reply(response):
            seen.append(("recordReply", response["recordAllowed"]))

        room.methods.startSlideShow("Q4")
        check("startSlideShow fires mySlideShowStarted", wait_for(lambda: ("slides", "Q4") in seen), str(seen))
        room.methods.showNextSlide()
        check("showNextSlide fires currentSlideIndexChanged", wait_for(lambda: ("slide", 1) in seen), str(seen))
        carol = "carol@sim.trueconf.local/c1"
        check("simulator control: join", sim.control(f"join 1 {carol} Carol") == "ok")
        check("simulator control: a participant asks to record", sim.control(f"recordask 1 {carol}") == "ok")
        check("recordRequest handler fires", wait_for(lambda: ("record", carol) in seen), str(seen))
        room.methods.allowRecord(carol)
        check("allowRecord answers with recordRequestReply", wait_for(lambda: ("recordReply", True) in seen), str(seen))

        room.methods.hangUp()
        check("hangUp returns to the normal state", wait_for(lambda: room.getAppState() == 3))
        room.close_session()

        # A wrong PIN: the simulator refuses auth; the client never becomes ready.
        errors = []
        bad = trueconf_room.VideoSDK(False)
        original = bad.caughtConnectionError
        bad.caughtConnectionError = lambda text=None: errors.append(text)
        bad.open_session(ip="127.0.0.1", port=sim.http_port, pin="0000")
        check("wrong PIN is refused", wait_for(lambda: bool(errors)) and not bad.isReady())
        bad.caughtConnectionError = original
    finally:
        sim.stop()
    print(f"{checks['passed']} passed, {checks['failed']} failed")
    return 0 if checks["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
