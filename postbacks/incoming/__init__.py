"""A network's call coming in: the endpoint (views), the reading of its
parameters (params), storing, deciding and answering it (process), the
workers' batches of queued calls (batches) and of clicks' new clients
(settling), how long an unmatched one waits (unmatched) and its replay when
its client appears (replay). An accepted event goes out through
postbacks/delivery/.

The incoming postback endpoint's work, apart from HTTP:

1. `enqueue` checks what needs no client (the spot, kept per process by
   crm/spots.py; the caller; the request's shape), writes the raw request as
   a queued IncomingPostback row in one autocommitted INSERT and answers
   "queued": a request answered 200 is never lost, whatever happens later.
   What fails those checks is stored as rejected and answered 4xx.
2. The workers decide queued rows (`batches`), and a spot that answers after
   processing has its request stored and decided at once (`run`); both go
   through `process`, and record the outcome on the row in the same
   transaction as the conversion, so a row marked accepted always has its
   conversion and a replay can never count an event twice.
3. Bad input is an `Outcome` with a 4xx status and a message naming the
   parameter; only a bug gives a 500, and that is logged on the row too.
4. The reads every postback makes (its spot and goals, the client, the
   conversions that decide it, the postbacks it goes to) are raw SQL built
   once per process, read into models by crm.rows. Django compiles an ORM
   query anew every time, and for these that cost more CPU than running
   them: a postback took 13 ms of CPU with them, 6.5 ms without. The click
   and a delivery loop's pass read the same way.
"""
