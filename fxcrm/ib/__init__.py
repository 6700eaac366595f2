"""The IB commission engine's database side: what the pure rules (fxcrm.domain.ib) need, loaded
from the tables (fxcrm.models.ib) once and looked up from memory per deal."""
