"""The hazard ledger (隐患台账): domain logic over bot.storage, free of any chat channel."""
