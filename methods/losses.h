#pragma once

#include <torch/types.h>

namespace pretext::methods {

/// SimCLR's NT-Xent: for 2N projections, each one's positive is the other view of its image and
/// its negatives the other 2N - 2; cross-entropy over cosine similarities / temperature, averaged
/// over all 2N anchors. z1, z2: [N, D], row i of each from image i.
torch::Tensor nt_xent(const torch::Tensor& z1, const torch::Tensor& z2, double temperature);
/// NT-Xent of one rank's anchors in a data-parallel step: z1, z2 [n, D] are rows
/// [offset, offset + n) of the global batch's projections all1, all2 [N, D]; each anchor's
/// negatives are the other 2N - 2 projections of the global batch; averaged over the 2n anchors.
torch::Tensor nt_xent(const torch::Tensor& z1, const torch::Tensor& z2, double temperature,
                      const torch::Tensor& all1, const torch::Tensor& all2, int64_t offset);

/// MoCo v2's InfoNCE: query i's positive is key i, its negatives every row of `queue` ([K, D],
/// keys of earlier batches); cross-entropy over cosine similarities / temperature, averaged over
/// the queries. q, k: [N, D] (normalised here; the queue is stored normalised).
torch::Tensor info_nce_with_queue(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& queue, double temperature);

/// MoCo v3's InfoNCE: query i's positive is key i, its negatives the other keys of the batch;
/// scaled by 2 * temperature as in the reference. q [n, D], k [N, D] (normalised here): the
/// queries are rows [offset, offset + n) of the global batch whose keys are k (all ranks' keys in
/// a data-parallel step, as the reference's concat_all_gather; q's own batch otherwise).
torch::Tensor info_nce_in_batch(const torch::Tensor& q, const torch::Tensor& k, double temperature,
                                int64_t offset = 0);

/// Mean over rows of -cos(p_i, z_i); `z` is taken as a constant target (stop-gradient). BYOL's
/// loss per direction is 2 + 2 * this, SimSiam's this.
torch::Tensor negative_cosine(const torch::Tensor& p, const torch::Tensor& z);

/// Collapse check (SimSiam, section 4.1): the standard deviation over the batch of L2-normalised
/// rows of `z` [B, D], averaged over dimensions; about 1 / sqrt(D) for embeddings spread over the
/// sphere, 0 when every image maps to one point.
torch::Tensor embedding_std(const torch::Tensor& z);

}  // namespace pretext::methods
