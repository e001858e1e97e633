"""A fast local receiver for outgoing postbacks: answers 200 `ok` to anything.

    python bench/receiver.py PORT

It runs as its own process (started by bench/common.py), so serving the
deliveries costs the bench process nothing. It counts requests and the
distinct X-Delivery-Id values it saw; `GET /__count` answers them as JSON
({"requests": n, "ids": m}) and is not counted itself.
"""

import asyncio
import json
import sys

requests = 0
delivery_ids = set()


class Receiver(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: the sender reuses its connections."""

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        global requests
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
            if request_line.split(" ")[1:2] == ["/__count"]:
                body = json.dumps({"requests": requests, "ids": len(delivery_ids)}).encode()
            else:
                requests += 1
                if delivery_id:
                    delivery_ids.add(delivery_id)
                body = b"ok"
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )


async def serve(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiver, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
