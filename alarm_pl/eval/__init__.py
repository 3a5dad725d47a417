"""The evaluation suite: generation files, win rates by reward and by LLM judge, consistency reports and plots.

Modules: ``records`` (the generation-file format shared with the trainer), ``collector`` (the trainer's validation /
test generation files), ``winrate`` (pairwise win rates and consistency, counted by ``selection/consistency.py``),
``prompt`` / ``config`` / ``client`` / ``cache`` / ``judge`` (the LLM judge), ``report`` and ``plots`` (outputs),
``cli`` (``python -m alarm_pl.eval compare``). Nothing heavy is imported here; nothing here imports the module.
"""

from alarm_pl.eval.records import GenerationRecord, config_hash, read_generations, write_generations

__all__ = ["GenerationRecord", "config_hash", "read_generations", "write_generations"]
