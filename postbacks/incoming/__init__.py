"""A network's call coming in: the endpoint (views), the reading of its
parameters (params), storing, deciding and answering it (process), how long
an unmatched one waits (unmatched) and its replay when its client appears
(replay). An accepted event goes out through postbacks/delivery/.

The incoming postback endpoint's work, apart from HTTP:

1. `store` writes the raw request as an IncomingPostback row and commits it
   before anything else happens, so a request is never lost, whatever
   processing does later.
2. `run` processes a stored request (a live one, or a replay of an old row)
   and records the outcome on the row in the same transaction as the
   conversion, so a row marked accepted always has its conversion and a
   replay can never count an event twice.
3. Bad input is an `Outcome` with a 4xx status and a message naming the
   parameter; only a bug gives a 500, and that is logged on the row too.
4. The reads every postback makes (its spot and goals, the client, the
   conversions that decide it, the postbacks it goes to) are raw SQL built
   once per process, read into models by crm.rows. Django compiles an ORM
   query anew every time, and for these that cost more CPU than running
   them: a postback took 13 ms of CPU with them, 6.5 ms without. The click
   and a delivery loop's pass read the same way.
"""
