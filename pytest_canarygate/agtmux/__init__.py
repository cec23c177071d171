"""The agtmux v4 -> v5 runbook pack: protocol views, evidence records and providers,
judgements, gate helpers and the simulator.

The engine (``pytest_canarygate``) knows none of this; the pack plugs into it through the
public ``pytest_canarygate_*`` hooks, as any team's own runbook pack would.

Comments cite the daemon's behaviour as "daemon facts N.M": section N.M of
``docs/daemon-facts.md``, which records what the real daemon serves.
"""
