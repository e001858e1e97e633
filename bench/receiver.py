"""A local receiver for outgoing postbacks: answers 200 `ok` to anything.

    python bench/receiver.py PORT [--delay MS]

It runs as its own process (started by bench/common.py), so serving the
deliveries costs the bench process nothing. It counts requests and the
distinct X-Delivery-Id values it saw, and notes when the first and the last
of them arrived (time.time(), the clock of every process on the machine):

- `GET /__count` answers {"requests": n, "ids": m, "first": t, "last": t}
  (times null before any request);
- `GET /__reset` sets all of them back to zero and answers the same.

Neither is counted itself. `--delay MS` answers every other request MS
milliseconds after it arrived (a slow network's receiver); the requests of
other connections are served meanwhile.
"""

import argparse
import asyncio
import json
import time

requests = 0
delivery_ids = set()
first = last = None


def counts():
    return {"requests": requests, "ids": len(delivery_ids), "first": first, "last": last}


def reset():
    global requests, first, last
    requests, first, last = 0, None, None
    delivery_ids.clear()


class Receiver(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: the sender reuses its connections."""

    delay = 0.0  # seconds

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        global requests, first, last
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            request_line, *lines = self.buffer[:end].decode("latin-1").split("\r\n")
            length, delivery_id = 0, None
            for line in lines:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "x-delivery-id":
                    delivery_id = value.strip()
            if len(self.buffer) < end + 4 + length:
                return  # the body is still on its way
            self.buffer = self.buffer[end + 4 + length :]
            path = request_line.split(" ")[1:2]
            delay = 0.0
            if path == ["/__count"]:
                body = json.dumps(counts()).encode()
            elif path == ["/__reset"]:
                reset()
                body = json.dumps(counts()).encode()
            else:
                requests += 1
                last = time.time()
                if first is None:
                    first = last
                if delivery_id:
                    delivery_ids.add(delivery_id)
                body, delay = b"ok", self.delay
            answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
            answer %= (len(body), body)
            if delay:
                # Answers on one connection keep their order: each waits the same delay.
                asyncio.get_running_loop().call_later(delay, self.write, answer)
            else:
                self.transport.write(answer)

    def write(self, answer):
        if not self.transport.is_closing():
            self.transport.write(answer)


async def serve(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiver, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("port", type=int)
    p.add_argument("--delay", type=float, default=0.0, help="milliseconds before each answer")
    args = p.parse_args()
    Receiver.delay = args.delay / 1000
    asyncio.run(serve(args.port))
