"""What the tests share: data builders, real servers and receivers, database helpers."""
