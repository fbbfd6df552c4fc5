//! Seeking to the offsets stored in PostgreSQL when partitions are assigned.

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sqlx::PgPool;
use tracing::{error, info, warn};

/// Consumer context whose rebalance assigns each partition at the next offset stored in
/// PostgreSQL for this consumer group.
pub struct OffsetsContext {
    pool: PgPool,
    group: String,
    topic: String,
    runtime: tokio::runtime::Handle,
}

impl OffsetsContext {
    pub fn new(
        pool: PgPool,
        group: String,
        topic: String,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        OffsetsContext {
            pool,
            group,
            topic,
            runtime,
        }
    }

    fn stored_offsets(&self) -> Result<Vec<(i32, i64)>, socle_store::Error> {
        // The rebalance callback is synchronous and runs inside the consumer's poll on a worker
        // thread of the multi-threaded runtime: block that worker, not the runtime.
        tokio::task::block_in_place(|| {
            self.runtime.block_on(socle_store::offsets::load(
                &self.pool,
                &self.group,
                &self.topic,
            ))
        })
    }
}

impl ClientContext for OffsetsContext {}

impl ConsumerContext for OffsetsContext {
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match self.stored_offsets() {
                    Ok(stored) => {
                        let partitions: Vec<i32> = tpl
                            .elements_for_topic(&self.topic)
                            .iter()
                            .map(|e| e.partition())
                            .collect();
                        for p in partitions {
                            let at = stored
                                .iter()
                                .find(|(sp, _)| *sp == p)
                                .map_or(Offset::Beginning, |(_, o)| Offset::Offset(*o));
                            if let Err(e) = tpl.set_partition_offset(&self.topic, p, at) {
                                error!(partition = p, error = %e, "cannot set start offset");
                            }
                        }
                        info!(assigned = ?stored_positions(tpl), "partitions assigned at stored offsets");
                    }
                    Err(e) => {
                        // Kafka's committed offsets are never ahead of PostgreSQL's, and the
                        // transaction skips anything already applied: correct, if slower.
                        warn!(error = %e, "cannot read stored offsets; starting from Kafka's");
                    }
                }
                if let Err(e) = base_consumer.assign(tpl) {
                    error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!("partitions revoked");
                if let Err(e) = base_consumer.unassign() {
                    error!(error = %e, "unassign failed");
                }
            }
            other => {
                error!(error = ?other, "rebalance error");
                if let Err(e) = base_consumer.unassign() {
                    error!(error = %e, "unassign failed");
                }
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            warn!(error = %e, "offset commit to kafka failed (monitoring only)");
        }
    }
}

fn stored_positions(tpl: &TopicPartitionList) -> Vec<(i32, String)> {
    tpl.elements()
        .iter()
        .map(|e| (e.partition(), format!("{:?}", e.offset())))
        .collect()
}
