"""SIRI's skills: the bank, miners, paired validation and internalization."""
