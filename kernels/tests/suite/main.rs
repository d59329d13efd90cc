//! The kernel test suite as one binary: each module is one topic (see its own header). One
//! binary compiles each instantiation of the kernels once instead of once per test file.

mod adafactor;
mod bad_input;
mod ceilings;
mod common;
mod determinism;
mod element;
mod kahan;
mod lane_sum;
mod literal;
mod models;
mod muon;
mod oracle;
mod reduced_precision;
mod rules14_adam8;
mod rules14_adam8_codec;
mod rules14_lamb;
mod rules14_schedule_free;
mod table_reads;
mod train_bytes;
mod train_clip;
mod train_crc;
mod train_optimizer;
mod train_optimizer_adam8;
mod train_optimizer_muon;
mod train_schedule;
