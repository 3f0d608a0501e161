"""The active-response engine: policy, state, timed reverts, batched dispatch to an executor.

Modules: ``policy`` (binding, locations, <target>), ``inventory`` (ansible-inventory), ``validate``
(refusals), ``whitelist`` and ``selfprotect``, ``timeouts`` (expiry and offender arithmetic),
``decisions``, ``state`` (SQLite), ``scheduler`` (timed reverts), ``dispatch`` (batches, retries),
``audit`` (the two log files), ``engine`` (ResponseEngine), ``build`` (files under a home), ``sink``
(the manager's AlertSink), ``control`` (the socket of ``tld ar``), ``alerts_follower`` (``tld runner``),
``executor`` (the Executor interface). See docs/active-response.md.
"""
