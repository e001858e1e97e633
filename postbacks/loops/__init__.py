"""What runs the work: the delivery loop (embedded), the RQ jobs and worker
class (jobs, worker), the wake-ups (queue), log retention (retention) and the
periodic imports (periodic).

The loops import both wings (postbacks/incoming/, postbacks/delivery/) and no
module of a wing imports them: a writer wakes them through postbacks/wake.py,
into which the app hands queue.look when it is ready (postbacks/apps.py).
"""
