"""The reference case on a namespace lab: deployment with playbooks/site.yml, the attack, and its timeline.

Used by the main job (``tld demo``, scripts/main-job.sh) and by bench/bench_reference.py.
"""
