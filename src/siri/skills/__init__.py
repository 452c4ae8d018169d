"""SIRI's skills: the bank, miners, paired validation and internalization (which steps, what weight).

Mining is three modules: ``prompts`` (the mining prompt and the parsing of its answers: what a miner
model reads and writes), ``trace`` (the model-free miner: rules per environment over successes) and
``miners`` (the ``Miner`` interface, the self / external / trace miners and ``make_miner``).
"""
