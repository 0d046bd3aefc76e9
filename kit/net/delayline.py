"""A userspace delay line: delay, jitter and loss for kernels without ``sch_netem``.

Run as a process (standard library only) inside the world's hidden node, a
network namespace with no IP address. Each emulated link A--B is built as two
veth pairs, A--[aN  bN]--B, whose middle ends aN and bN sit in the hidden node.
This process reads every frame arriving on any middle end and writes it out of
the opposite end once the link's delay has passed::

    A ──veth── aN ┐                     ┌ bN ──veth── B
                  └─ read ─ wait delay ─ write ┘

Design points (measured on kernels without netem, see ARCHITECTURE.md):

- One AF_PACKET socket, not bound to an interface, receives from all middle ends
  at once; the interface a frame came in on picks its link and direction.
  ``PACKET_IGNORE_OUTGOING`` keeps our own writes from being read back.
- ``PACKET_VNET_HDR``: the 10-byte virtio header is read with each frame and
  written back unchanged, so GSO super-frames (up to 64 KB) and frames whose
  checksum the sender left to offload survive the trip. Without it TCP silently
  fails while ping still works.
- One ``select()`` loop whose timeout is the earliest due frame, with the
  process's timer slack set to 1 ns (asyncio's epoll rounds timeouts to whole
  milliseconds: too coarse). Frames wait in one heap ordered by (due time,
  arrival number); within a direction due times are clamped never to go
  backwards, so jitter never reorders frames (netem's jitter does reorder).
- Each direction holds at most ``LIMIT`` frames (netem's default limit); more
  are dropped, as a full router queue would.
- Timing is corrected for the loop's own lateness: the process keeps a running
  average of how late frames leave and sends that much earlier.
- It runs with a real-time priority (SCHED_FIFO), so other busy processes on a
  2-core machine do not delay frames, and while frames are in flight it asks the
  kernel to keep idle CPUs polling (``StayAwake``): waking a halted vCPU of a
  virtual machine took milliseconds.
- The line dies with its world: ``PR_SET_PDEATHSIG`` kills it when its owner
  dies, it exits when its standard input closes, and when its interfaces vanish.

Protocol on standard input, one JSON object per line. The first line configures
the links; later lines change a direction or ask for statistics::

    {"links": {"0": {"a": "a0", "b": "b0", "ab": {"delay_ms": 75}, "ba": {...}}},
     "seed": 1}
    {"set": "0", "dir": "ab", "delay_ms": 100, "jitter_ms": 5, "loss_pct": 1}
    {"stats": true}

Standard output answers with one JSON line each: ``{"ready": true}`` once the
socket is open, then one line per ``stats`` request.
"""

import ctypes
import errno
import gc
import heapq
import json
import os
import random
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
SO_TIMESTAMPNS = 35
PR_SET_PDEATHSIG = 1
PR_SET_TIMERSLACK = 29
SIGKILL = 9

LIMIT = 1000  # frames queued per direction, as netem's default limit
FRAME_MAX = 65536 + 64  # a GSO super-frame plus headers
BATCH = 64  # frames read per wake-up before due frames are sent
GAIN = 0.05  # how fast the lateness correction adapts
MAX_EARLY = 0.002  # never send more than 2 ms early
RT_PRIORITY = 10


class Direction:
    """One direction of one link: where its frames go and how they are treated."""

    __slots__ = ("out", "delay", "jitter", "loss", "last_due", "queued", "sent", "dropped")

    def __init__(self, out: str) -> None:
        self.out = out
        self.delay = self.jitter = self.loss = 0.0
        self.last_due = 0.0
        self.queued = self.sent = self.dropped = 0

    def configure(self, p: dict) -> None:
        self.delay = float(p.get("delay_ms", self.delay * 1e3)) / 1e3
        self.jitter = float(p.get("jitter_ms", self.jitter * 1e3)) / 1e3
        self.loss = float(p.get("loss_pct", self.loss * 100)) / 100


def die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the owner died before we could ask
        sys.exit(0)


def run_first() -> None:
    """Ask to be scheduled before ordinary processes: a busy notebook must not delay frames.

    SCHED_FIFO at a low real-time priority; the kernel's real-time throttling still
    leaves 5% of each core to everything else should the line ever spin.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except OSError:
        try:
            os.nice(-10)
        except OSError:
            pass  # not root: run at normal priority


def open_socket() -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 32 << 20)
    # The kernel stamps each frame as it arrives: a frame that waited in the socket
    # while we were busy is still delayed from its true arrival.
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setblocking(False)
    return sock


def arrival(ancillary: list) -> float:
    """The kernel's arrival stamp of a frame (SO_TIMESTAMPNS), in seconds; now if absent."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec + nsec * 1e-9
    return time.time()


class StayAwake:
    """Keep idle CPUs out of deep sleep while frames are in flight.

    A frame is sent when a timer wakes this process. On a virtual machine an idle
    vCPU halts, and waking a halted vCPU can take the host milliseconds: measured
    here, frames then left up to 5 ms late. Writing 0 to /dev/cpu_dma_latency (the
    kernel's PM QoS interface) asks for idle CPUs that poll instead; the request
    lasts while the file stays open. It is held only while frames are queued, and
    for IDLE_S after, so a quiet world costs no CPU. Where the file is missing or
    the kernel's idle driver ignores it, nothing changes.
    """

    IDLE_S = 1.0

    def __init__(self) -> None:
        self.fd: int | None = None
        self.busy_at = 0.0
        self.available = True

    def hold(self, now: float) -> None:
        self.busy_at = now
        if self.fd is None and self.available:
            try:
                self.fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
                os.write(self.fd, struct.pack("i", 0))
            except OSError:
                self.fd, self.available = None, False  # not here: don't try again

    def release_after(self, now: float) -> float | None:
        """Release once idle long enough; the select timeout until then (None: none)."""
        if self.fd is None:
            return None
        left = self.busy_at + self.IDLE_S - now
        if left <= 0:
            os.close(self.fd)
            self.fd = None
            return None
        return left


def main() -> None:
    die_with_parent()
    run_first()
    gc.disable()  # the loop makes no reference cycles; a collection would stall frames
    config = json.loads(sys.stdin.readline())
    rng = random.Random(config.get("seed"))
    directions: dict[str, Direction] = {}  # keyed by the interface frames arrive on
    by_link: dict[tuple[str, str], Direction] = {}
    for lid, link in config["links"].items():
        for src, dst, key in ((link["a"], link["b"], "ab"), (link["b"], link["a"], "ba")):
            d = Direction(dst)
            d.configure(link.get(key, {}))
            directions[src] = d
            by_link[(lid, key)] = d

    sock = open_socket()
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()

    heap: list = []  # (due, seq, direction, proto, frame)
    awake = StayAwake()
    seq = 0
    lateness = 0.0  # how much earlier than due we start sending, in s
    late_max = 0.0
    late_count = 0  # frames that left more than 1 ms late
    pending = b""
    fds = [sock, stdin]
    clock = time.time  # the clock of the kernel's arrival stamps

    while True:
        # Send every frame that is due (allowing for our usual lateness).
        now = clock()
        while heap and heap[0][0] <= now + lateness:
            due, _, d, proto, frame = heapq.heappop(heap)
            d.queued -= 1
            try:
                sock.sendto(frame, (d.out, proto))
                d.sent += 1
            except OSError as e:
                d.dropped += 1
                if e.errno in (errno.ENXIO, errno.ENODEV):  # the world is gone
                    return
            # An integral controller: leaving late makes us start earlier next time.
            late = clock() - due
            lateness = min(max(lateness + GAIN * late, 0.0), MAX_EARLY)
            late_max = max(late_max, late)
            if late > 0.001:
                late_count += 1
            now = clock()

        if heap:
            awake.hold(now)
            timeout = max(0.0, heap[0][0] - lateness - now)
        else:
            timeout = awake.release_after(now)
        readable, _, _ = select.select(fds, [], [], timeout)

        if stdin in readable:
            chunk = os.read(stdin, 65536)
            if not chunk:  # the owner closed our input: stop
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                msg = json.loads(line)
                if "set" in msg:
                    by_link[(str(msg["set"]), msg["dir"])].configure(msg)
                if msg.get("stats"):
                    stats = {
                        f"{lid}:{key}": [d.sent, d.dropped, d.queued]
                        for (lid, key), d in by_link.items()
                    }
                    out.write(
                        json.dumps(
                            {
                                "links": stats,
                                "lateness_ms": lateness * 1e3,
                                "late_max_ms": late_max * 1e3,
                                "late_over_1ms": late_count,
                            }
                        )
                        + "\n"
                    )
                    out.flush()

        if sock in readable:
            for _ in range(BATCH):
                try:
                    frame, ancillary, _, addr = sock.recvmsg(FRAME_MAX, 64)
                except BlockingIOError:
                    break
                d = directions.get(addr[0])
                if d is None or addr[2] == PACKET_OUTGOING:
                    continue
                if d.loss and rng.random() < d.loss:
                    d.dropped += 1
                    continue
                if d.queued >= LIMIT:
                    d.dropped += 1
                    continue
                delay = d.delay + (rng.uniform(-d.jitter, d.jitter) if d.jitter else 0.0)
                due = max(arrival(ancillary) + max(delay, 0.0), d.last_due)
                d.last_due = due
                d.queued += 1
                seq += 1
                heapq.heappush(heap, (due, seq, d, addr[1], frame))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
