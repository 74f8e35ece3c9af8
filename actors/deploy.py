"""Create or find the Ray actors a server needs.

The coordinator is named and detached: a second ``callsure serve`` joined
to the same Ray cluster finds the running one instead of starting another
writer of the store. Customer shards are named by index. Their count,
``ray.customer_shards``, must stay the same while customers are stored,
because a customer's shard is a hash of its id modulo that count.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import ray

from callsure.actors.agent_pool import POOL_NAME_PREFIX, AgentPool
from callsure.actors.coordinator import COORDINATOR_NAME, Coordinator
from callsure.actors.customer_shard import CustomerShard, shard_index
from callsure.actors.predictors import build_predictor, load_model

logger = logging.getLogger(__name__)

SHARD_NAME = "callsure-customer-shard-{index}"
POOL_NAME = POOL_NAME_PREFIX + "{group}"
POOL_SNAPSHOT_SUFFIX = ".agents-"
# Actor calls from the server may run concurrently in each actor.
MAX_CONCURRENCY = 1000


@dataclass
class Actors:
    """Handles of the actors one server talks to."""

    coordinator: ray.actor.ActorHandle
    shards: list[ray.actor.ActorHandle]
    store_path: Path
    pools: dict[str, ray.actor.ActorHandle] = field(default_factory=dict)

    def shard_index(self, customer_id: str) -> int:
        return shard_index(customer_id, len(self.shards))

    async def pool_for(self, group: str) -> ray.actor.ActorHandle:
        """Return the pool of ``group``, creating it on first use (about 1 s)."""
        pool = self.pools.get(group)
        if pool is None:
            pool = _pool_actor(group, self.store_path)
            await pool.has_agent.remote("")
            self.pools[group] = pool
            await self.coordinator.register_pool.remote(group, pool)
            logger.info("agent pool %s ready", group)
        return pool

    async def close(self) -> None:
        """Write the shards' and pools' snapshots; the store is always durable."""
        actors = [*self.shards, *self.pools.values()]
        results = await asyncio.gather(
            *(actor.close.remote() for actor in actors),
            self.coordinator.save_snapshot.remote(),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Exception):
                logger.error("actor close failed: %s", result)


def _pool_actor(group: str, store_path: Path) -> ray.actor.ActorHandle:
    return AgentPool.options(
        name=POOL_NAME.format(group=group),
        lifetime="detached",
        get_if_exists=True,
        max_concurrency=MAX_CONCURRENCY,
        num_cpus=0,
    ).remote(group, f"{store_path}{POOL_SNAPSHOT_SUFFIX}{group}.msgpack")


def stored_groups(store_path: Path) -> list[str]:
    """Agent groups that have a pool snapshot beside the store."""
    prefix = store_path.name + POOL_SNAPSHOT_SUFFIX
    return sorted(
        path.name[len(prefix) : -len(".msgpack")]
        for path in store_path.parent.glob(prefix + "*.msgpack")
    )


async def deploy_actors(config) -> Actors:
    """Create the coordinator and the customer shards, or find running ones."""
    store_path = Path(config.storage.path).expanduser().resolve()
    store_path.parent.mkdir(parents=True, exist_ok=True)
    # The actors need no server secret; the token stays in this process.
    config = config.replace(storage={"path": str(store_path)}, server={"token": ""})
    if config.prediction.model_file:
        # Checked here, so a bad file stops the start with its name rather
        # than failing inside the actor; absolute for the Ray worker.
        model_path = Path(config.prediction.model_file).expanduser().resolve()
        await asyncio.to_thread(load_model, str(model_path))
        config = config.replace(prediction={"model_file": str(model_path)})

    coordinator = Coordinator.options(
        name=COORDINATOR_NAME,
        lifetime="detached",
        get_if_exists=True,
        max_concurrency=MAX_CONCURRENCY,
        num_cpus=0,
    ).remote(config, build_predictor)
    shards = [
        CustomerShard.options(
            name=SHARD_NAME.format(index=index),
            lifetime="detached",
            get_if_exists=True,
            max_concurrency=MAX_CONCURRENCY,
            num_cpus=0,
        ).remote(index, f"{store_path}.customers-{index}.msgpack")
        for index in range(config.ray.customer_shards)
    ]
    await coordinator.start.remote()
    # The store holds the rules an operator set last; the shards' snapshots
    # may predate them.
    rules, repeat_rule = await coordinator.customer_rules.remote()
    await asyncio.gather(
        *(shard.set_rules.remote(rules) for shard in shards),
        *(shard.set_repeat_rule.remote(repeat_rule) for shard in shards),
    )
    actors = Actors(coordinator, shards, store_path)
    for group in stored_groups(store_path):
        await actors.pool_for(group)
    logger.info(
        "actors ready: coordinator %s, %d customer shards, %d agent pools",
        COORDINATOR_NAME,
        len(shards),
        len(actors.pools),
    )
    return actors
