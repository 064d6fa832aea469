"""The audit log: who changed what, recorded in the transaction of the change."""
