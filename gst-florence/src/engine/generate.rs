//! Decoding with the reference's semantics (transformers' `generate`):
//! greedy, beam search and sampling, with the logits processors Florence-2
//! uses (no-repeat n-gram, min new tokens, forced BOS, forced EOS) applied in
//! the reference's order. The model is behind [`StepModel`], so this module
//! is pure bookkeeping and is tested without ONNX Runtime.

use super::config::EarlyStopping;

/// One decoder step for every live hypothesis.
pub trait StepModel {
    type Error;
    /// Feeds the last token of each hypothesis. `parents[i]` is the hypothesis of
    /// the previous step that hypothesis `i` continues (its cache must follow);
    /// `None` on the first step. Returns logits, `tokens.len()` rows of `vocab()`.
    fn step(&mut self, tokens: &[u32], parents: Option<&[usize]>) -> Result<&[f32], Self::Error>;
    fn vocab(&self) -> usize;
}

/// Sampling settings; temperature > 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1.0 disables top-p.
    pub top_p: f32,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecodeParams {
    pub max_new_tokens: usize,
    pub min_new_tokens: usize,
    pub num_beams: usize,
    pub no_repeat_ngram_size: usize,
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    pub decoder_start: u32,
    pub eos: u32,
    pub pad: u32,
    pub forced_bos: Option<u32>,
    pub forced_eos: Option<u32>,
    pub sampling: Option<Sampling>,
}

/// Result of decoding: the full decoder sequence (starting with the decoder start
/// token, as `generate` returns it), and per greedy step the processed-score
/// margin between the best and second-best token (`None` where a token was forced).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub ids: Vec<u32>,
    pub margins: Vec<Option<f32>>,
    /// Beam search: the length-normalised score of the returned sequence.
    pub score: Option<f32>,
}

/// The processors of `_get_logits_processor`, in its order, on one row of scores.
/// `seq` is the hypothesis so far (decoder start included).
fn process(scores: &mut [f32], seq: &[u32], p: &DecodeParams, max_length: usize) {
    let cur_len = seq.len();
    let n = p.no_repeat_ngram_size;
    if n > 0 && cur_len >= n {
        let prefix = &seq[cur_len + 1 - n..];
        for w in seq.windows(n) {
            if &w[..n - 1] == prefix
                && let Some(s) = scores.get_mut(w[n - 1] as usize)
            {
                *s = f32::NEG_INFINITY;
            }
        }
    }
    if p.min_new_tokens > 0
        && cur_len - 1 < p.min_new_tokens
        && let Some(s) = scores.get_mut(p.eos as usize)
    {
        *s = f32::NEG_INFINITY;
    }
    if let Some(bos) = p.forced_bos
        && cur_len == 1
    {
        force(scores, bos);
    }
    if let Some(eos) = p.forced_eos
        && cur_len == max_length - 1
    {
        force(scores, eos);
    }
}

fn force(scores: &mut [f32], token: u32) {
    scores.fill(f32::NEG_INFINITY);
    if let Some(s) = scores.get_mut(token as usize) {
        *s = 0.0;
    }
}

/// Temperature, top-k and top-p warpers (sampling only), in the reference's order.
fn warp(scores: &mut [f32], s: &Sampling, min_keep: usize) {
    if s.temperature != 1.0 {
        for v in scores.iter_mut() {
            *v /= s.temperature;
        }
    }
    if s.top_k > 0 {
        let k = s.top_k.max(min_keep).min(scores.len());
        let mut sorted: Vec<f32> = scores.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let kth = sorted[k - 1];
        for v in scores.iter_mut() {
            if *v < kth {
                *v = f32::NEG_INFINITY;
            }
        }
    }
    if s.top_p < 1.0 {
        // Ascending sort; drop the low tail whose cumulative probability <= 1 - top_p.
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let probs = softmax(&idx.iter().map(|&i| scores[i]).collect::<Vec<_>>());
        let mut cum = 0.0f32;
        let keep_from = idx.len().saturating_sub(min_keep);
        let mut remove = Vec::new();
        for (rank, (&i, pr)) in idx.iter().zip(probs).enumerate() {
            cum += pr;
            if cum <= 1.0 - s.top_p && rank < keep_from {
                remove.push(i);
            }
        }
        for i in remove {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

fn softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        return vec![0.0; x.len()];
    }
    let e: Vec<f32> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn log_softmax(x: &mut [f32]) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        return;
    }
    let s: f32 = x.iter().map(|v| (v - m).exp()).sum();
    let lse = m + s.ln();
    for v in x.iter_mut() {
        *v -= lse;
    }
}

/// First index of the maximum (torch.argmax picks the first on ties).
fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best
}

fn margin(x: &[f32]) -> Option<f32> {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in x {
        if v > a {
            b = a;
            a = v;
        } else if v > b {
            b = v;
        }
    }
    let m = a - b;
    m.is_finite().then_some(m)
}

/// A small, fast, seedable generator (xoshiro256** seeded by SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Index drawn with probability proportional to `weights` (all >= 0, not all 0).
    pub fn weighted(&mut self, weights: &[f32]) -> usize {
        let total: f64 = weights.iter().map(|&w| w as f64).sum();
        let mut r = self.next_f64() * total;
        for (i, &w) in weights.iter().enumerate() {
            r -= w as f64;
            if r < 0.0 && w > 0.0 {
                return i;
            }
        }
        weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
    }
}

/// Runs generation to the end with the reference's stopping rules.
pub fn decode<M: StepModel>(model: &mut M, p: &DecodeParams) -> Result<Decoded, M::Error> {
    let mut search = Search::new(p, model.vocab());
    while !search.done() {
        let logits = model.step(search.tokens(), search.parents())?;
        search.advance(logits);
    }
    Ok(search.finish())
}

/// One request's generation as a state machine, advanced one decoder step at
/// a time by whoever runs the decoder: [`decode`] for a request alone, or a
/// batched step that feeds several requests' hypotheses in one run (each
/// request's rows are its own; its logits rows come back in the same order).
pub enum Search {
    Greedy(Box<Greedy>),
    Beams(Box<Beams>),
}

impl Search {
    pub fn new(p: &DecodeParams, vocab: usize) -> Self {
        if p.num_beams <= 1 {
            Search::Greedy(Box::new(Greedy::new(p, vocab)))
        } else {
            Search::Beams(Box::new(Beams::new(p, vocab)))
        }
    }

    /// No more steps: [`Search::finish`] has the answer.
    pub fn done(&self) -> bool {
        match self {
            Search::Greedy(g) => g.done,
            Search::Beams(b) => b.done,
        }
    }

    /// The last token of each live hypothesis, to feed the next step.
    pub fn tokens(&self) -> &[u32] {
        match self {
            Search::Greedy(g) => &g.seq[g.seq.len() - 1..],
            Search::Beams(b) => &b.last,
        }
    }

    /// For each hypothesis, the one of the previous step it continues (its
    /// cache must follow); `None` on the first step.
    pub fn parents(&self) -> Option<&[usize]> {
        match self {
            Search::Greedy(g) => (g.seq.len() > 1).then_some(&[0usize][..]),
            Search::Beams(b) => b.parents.as_deref(),
        }
    }

    /// Takes the step's logits (`tokens().len()` rows of the vocabulary).
    pub fn advance(&mut self, logits: &[f32]) {
        match self {
            Search::Greedy(g) => g.advance(logits),
            Search::Beams(b) => b.advance(logits),
        }
    }

    pub fn finish(self) -> Decoded {
        match self {
            Search::Greedy(g) => Decoded {
                ids: g.seq,
                margins: g.margins,
                score: None,
            },
            Search::Beams(mut b) => {
                let (ids, score, _) = b.finished.swap_remove(0);
                Decoded {
                    ids,
                    margins: Vec::new(),
                    score: Some(score),
                }
            }
        }
    }
}

/// Greedy decoding or sampling: one hypothesis.
pub struct Greedy {
    p: DecodeParams,
    vocab: usize,
    max_length: usize,
    seq: Vec<u32>,
    margins: Vec<Option<f32>>,
    rng: Option<Rng>,
    scores: Vec<f32>,
    done: bool,
}

impl Greedy {
    fn new(p: &DecodeParams, vocab: usize) -> Self {
        let max_length = 1 + p.max_new_tokens;
        Greedy {
            p: p.clone(),
            vocab,
            max_length,
            seq: vec![p.decoder_start],
            margins: Vec::new(),
            rng: p.sampling.as_ref().map(|s| Rng::new(s.seed)),
            scores: Vec::new(),
            done: max_length <= 1,
        }
    }

    fn advance(&mut self, logits: &[f32]) {
        let p = &self.p;
        self.scores.clear();
        self.scores.extend_from_slice(&logits[..self.vocab]);
        process(&mut self.scores, &self.seq, p, self.max_length);
        let next = match (&p.sampling, self.rng.as_mut()) {
            (Some(s), Some(rng)) => {
                warp(&mut self.scores, s, 1);
                self.margins.push(margin(&self.scores));
                rng.weighted(&softmax(&self.scores))
            }
            _ => {
                self.margins.push(margin(&self.scores));
                argmax(&self.scores)
            }
        };
        self.seq.push(next as u32);
        self.done = next as u32 == p.eos || self.seq.len() >= self.max_length;
    }
}

#[derive(Clone)]
struct Candidate {
    score: f32,
    beam: usize,
    token: u32,
}

/// Indices of the k best values, best first; ties keep the lower index first.
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return vec![];
    }
    idx.select_nth_unstable_by(k - 1, |&a, &b| {
        values[b].total_cmp(&values[a]).then(a.cmp(&b))
    });
    idx.truncate(k);
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx
}

/// `k` indices drawn without replacement with probability softmax(`scores`),
/// ordered best score first, as `torch.multinomial(probs, k)` then the gather
/// `_beam_search` does. Like torch, it always returns `k` indices: when fewer
/// than `k` have a non-zero probability (a forced token leaves one), the rest
/// are zero-probability indices (scores of -inf or -1e9 below the best), so
/// every step keeps `num_beams` hypotheses and the decoder's batch never shrinks.
fn sample_without_replacement(scores: &[f32], k: usize, rng: &mut Rng) -> Vec<usize> {
    let mut probs = softmax(scores);
    let mut picks = Vec::with_capacity(k);
    while picks.len() < k && probs.iter().any(|&w| w > 0.0) {
        let i = rng.weighted(&probs);
        probs[i] = 0.0;
        picks.push(i);
    }
    if picks.len() < k {
        let taken: std::collections::HashSet<usize> = picks.iter().copied().collect();
        let rest: Vec<f32> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if taken.contains(&i) {
                    f32::NEG_INFINITY
                } else {
                    s
                }
            })
            .collect();
        picks.extend(
            top_k(&rest, k + taken.len())
                .into_iter()
                .filter(|i| !taken.contains(i))
                .take(k - picks.len()),
        );
    }
    picks.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    picks
}

/// Beam search as transformers 5 implements it (`_beam_search`): top 2*num_beams
/// continuations over beams x vocabulary, finished candidates among the top
/// num_beams enter the pool with score / len^length_penalty, the best
/// num_beams unfinished continue, and the stopping heuristics of `early_stopping`.
pub struct Beams {
    p: DecodeParams,
    vocab: usize,
    max_length: usize,
    running: Vec<Vec<u32>>,
    running_scores: Vec<f32>,
    /// Finished pool: placeholders with score -1e9, not finished.
    finished: Vec<(Vec<u32>, f32, bool)>,
    heuristic_unsatisfied: bool,
    rng: Option<Rng>,
    parents: Option<Vec<usize>>,
    cur_len: usize,
    acc: Vec<f32>,
    /// The last token of each running beam.
    last: Vec<u32>,
    done: bool,
}

impl Beams {
    fn new(p: &DecodeParams, vocab: usize) -> Self {
        let nb = p.num_beams;
        Beams {
            p: p.clone(),
            vocab,
            max_length: 1 + p.max_new_tokens,
            running: vec![vec![p.decoder_start]; nb],
            running_scores: (0..nb).map(|i| if i == 0 { 0.0 } else { -1e9 }).collect(),
            finished: vec![(vec![p.decoder_start], -1e9, false); nb],
            heuristic_unsatisfied: true,
            rng: p.sampling.as_ref().map(|s| Rng::new(s.seed)),
            parents: None,
            cur_len: 1,
            acc: vec![0f32; nb * vocab],
            last: vec![p.decoder_start; nb],
            done: false,
        }
    }

    fn advance(&mut self, logits: &[f32]) {
        let p = &self.p;
        let nb = p.num_beams;
        let vocab = self.vocab;
        let max_length = self.max_length;
        let keep = 2 * nb; // max(2, 1 + number of eos ids) * num_beams, one eos id
        let decoder_prompt_len = 1usize;
        for b in 0..nb {
            let row = &mut self.acc[b * vocab..(b + 1) * vocab];
            row.copy_from_slice(&logits[b * vocab..(b + 1) * vocab]);
            log_softmax(row);
            process(row, &self.running[b], p, max_length);
            if let Some(s) = &p.sampling {
                warp(row, s, 2);
            }
            for v in row.iter_mut() {
                *v += self.running_scores[b];
            }
        }
        let acc = &self.acc;
        let chosen: Vec<usize> = match (&p.sampling, self.rng.as_mut()) {
            (Some(_), Some(rng)) => sample_without_replacement(acc, keep, rng),
            _ => top_k(acc, keep),
        };
        let cands: Vec<Candidate> = chosen
            .iter()
            .map(|&i| Candidate {
                score: acc[i],
                beam: i / vocab,
                token: (i % vocab) as u32,
            })
            .collect();
        let cur_len = self.cur_len;
        let new_len = cur_len + 1;
        // Stopping criteria per candidate: EOS, or the maximum length reached.
        let hits: Vec<bool> = cands
            .iter()
            .map(|c| c.token == p.eos || new_len >= max_length)
            .collect();

        // Next running beams: best num_beams, finished ones pushed down by -1e9.
        let running_scores_k: Vec<f32> = cands
            .iter()
            .zip(&hits)
            .map(|(c, &h)| c.score + if h { -1e9 } else { 0.0 })
            .collect();
        let next = top_k(&running_scores_k, nb);

        // Finished pool update.
        let all_full = self.finished.iter().all(|f| f.2) && p.early_stopping == EarlyStopping::True;
        let denom = ((cur_len + 1 - decoder_prompt_len) as f64).powf(p.length_penalty as f64);
        let mut merged: Vec<(Vec<u32>, f32, bool)> = self.finished.clone();
        for (k, c) in cands.iter().enumerate() {
            let just_finished = hits[k] && k < nb;
            let mut s = (c.score as f64 / denom) as f32;
            if all_full {
                s += -1e9;
            }
            if !self.heuristic_unsatisfied {
                s += -1e9;
            }
            if !just_finished {
                s += -1e9;
            }
            let mut seq = self.running[c.beam].clone();
            seq.push(c.token);
            merged.push((seq, s, just_finished));
        }
        let merged_scores: Vec<f32> = merged.iter().map(|m| m.1).collect();
        self.finished = top_k(&merged_scores, nb)
            .into_iter()
            .map(|i| merged[i].clone())
            .collect();

        let new_running: Vec<Vec<u32>> = next
            .iter()
            .map(|&k| {
                let mut s = self.running[cands[k].beam].clone();
                s.push(cands[k].token);
                s
            })
            .collect();
        self.running_scores = next.iter().map(|&k| running_scores_k[k]).collect();
        self.parents = Some(next.iter().map(|&k| cands[k].beam).collect());
        self.running = new_running;
        self.last = self.running.iter().map(|s| s[s.len() - 1]).collect();
        self.cur_len = new_len;
        let cur_len = new_len;

        // Early-stop heuristic.
        let hyp_len = if p.early_stopping == EarlyStopping::Never && p.length_penalty > 0.0 {
            max_length - decoder_prompt_len
        } else {
            cur_len - decoder_prompt_len
        };
        let best_possible =
            (self.running_scores[0] as f64 / (hyp_len as f64).powf(p.length_penalty as f64)) as f32;
        let worst_finished = self
            .finished
            .iter()
            .map(|f| f.1)
            .fold(f32::INFINITY, f32::min);
        let improvable = self
            .finished
            .iter()
            .any(|f| best_possible > if f.2 { worst_finished } else { -1e9 });
        self.heuristic_unsatisfied &= improvable;

        let open_beam =
            !(self.finished.iter().all(|f| f.2) && p.early_stopping == EarlyStopping::True);
        let valid_continuations = !hits.iter().all(|&h| h);
        self.done = !(self.heuristic_unsatisfied && open_beam && valid_continuations);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy model whose next-token logits depend on the last token only.
    struct Table {
        vocab: usize,
        rows: Vec<Vec<f32>>,
        out: Vec<f32>,
        calls: usize,
        /// Hypotheses fed at each step (a real decoder's batch must not change).
        batches: Vec<usize>,
    }

    impl StepModel for Table {
        type Error = ();
        fn step(&mut self, tokens: &[u32], parents: Option<&[usize]>) -> Result<&[f32], ()> {
            self.calls += 1;
            self.batches.push(tokens.len());
            if let Some(p) = parents {
                assert_eq!(p.len(), tokens.len(), "one parent per hypothesis");
            }
            self.out.clear();
            for &t in tokens {
                self.out.extend_from_slice(&self.rows[t as usize]);
            }
            Ok(&self.out)
        }
        fn vocab(&self) -> usize {
            self.vocab
        }
    }

    fn params(beams: usize) -> DecodeParams {
        DecodeParams {
            max_new_tokens: 10,
            min_new_tokens: 0,
            num_beams: beams,
            no_repeat_ngram_size: 3,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::True,
            decoder_start: 2,
            eos: 2,
            pad: 1,
            forced_bos: Some(0),
            forced_eos: Some(2),
            sampling: None,
        }
    }

    fn table() -> Table {
        // vocab 6: 0 bos, 1 pad, 2 eos, 3..5 words. After bos: 3 likely; 3 -> 4; 4 -> 3 or eos.
        let r = |v: [f32; 6]| v.to_vec();
        Table {
            vocab: 6,
            rows: vec![
                r([0.0, -9.0, -1.0, 3.0, 1.0, 0.5]),
                r([0.0; 6]),
                r([0.0; 6]),
                r([-9.0, -9.0, 0.0, -2.0, 2.0, 1.0]),
                r([-9.0, -9.0, 1.5, 2.0, -1.0, 0.0]),
                r([-9.0, -9.0, 3.0, 0.0, 0.0, -1.0]),
            ],
            out: vec![],
            calls: 0,
            batches: vec![],
        }
    }

    #[test]
    fn greedy_forces_bos_and_blocks_repeated_trigrams() {
        let mut m = table();
        let d = decode(&mut m, &params(1)).unwrap();
        // 2 -> forced 0 -> 3 -> 4 -> 3 -> 4 would repeat "3 4" after "4 3"? trigram (3,4,3) then
        // (4,3,4) are new; then (3,4,3) repeats, so 3 is banned after "3 4": eos wins.
        assert_eq!(d.ids, [2, 0, 3, 4, 3, 4, 2]);
        assert_eq!(d.margins[0], None, "forced BOS has no margin");
        assert!(d.margins[1].unwrap() > 0.0);
    }

    #[test]
    fn forced_eos_at_the_length_limit() {
        let mut m = table();
        let mut p = params(1);
        p.max_new_tokens = 3;
        let d = decode(&mut m, &p).unwrap();
        assert_eq!(d.ids, [2, 0, 3, 2]);
    }

    #[test]
    fn min_new_tokens_delays_eos() {
        let mut m = table();
        let mut p = params(1);
        p.no_repeat_ngram_size = 0;
        p.min_new_tokens = 6;
        let d = decode(&mut m, &p).unwrap();
        assert!(d.ids.len() >= 8, "{:?}", d.ids);
    }

    #[test]
    fn beam_search_finds_a_better_total_than_greedy() {
        let mut m = table();
        let d = decode(&mut m, &params(3)).unwrap();
        assert_eq!(d.ids[..2], [2, 0]);
        assert_eq!(*d.ids.last().unwrap(), 2);
        assert!(d.score.unwrap() > -10.0);
    }

    #[test]
    fn sampling_is_reproducible_with_a_seed() {
        let mut p = params(1);
        p.sampling = Some(Sampling {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            seed: 42,
        });
        let a = decode(&mut table(), &p).unwrap();
        let b = decode(&mut table(), &p).unwrap();
        assert_eq!(a.ids, b.ids);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..40 {
            p.sampling.as_mut().unwrap().seed = seed;
            seen.insert(decode(&mut table(), &p).unwrap().ids);
        }
        assert!(seen.len() > 1, "different seeds give different samples");
    }

    #[test]
    fn sampling_with_beams_keeps_every_beam() {
        // Forced BOS leaves one token with non-zero probability at the first step;
        // the decoder must still get num_beams hypotheses at every later step.
        for beams in [2, 3, 5] {
            for (min, max) in [(0, 10), (4, 4), (0, 1), (1, 1), (6, 8)] {
                for seed in 0..20 {
                    let mut p = params(beams);
                    p.min_new_tokens = min;
                    p.max_new_tokens = max;
                    p.sampling = Some(Sampling {
                        temperature: 0.7,
                        top_k: 50,
                        top_p: 0.9,
                        seed,
                    });
                    let mut m = table();
                    let d = decode(&mut m, &p).unwrap();
                    assert_eq!(m.batches[0], beams);
                    assert!(m.batches.iter().all(|&b| b == beams), "{:?}", m.batches);
                    let new = d.ids.len() - 1;
                    assert!((min..=max).contains(&new), "{min}..={max}: {:?}", d.ids);
                    if max >= 2 {
                        assert_eq!(d.ids[1], 0, "forced BOS");
                    }
                    assert_eq!(*d.ids.last().unwrap(), 2, "ends with EOS: {:?}", d.ids);
                    let again = decode(&mut table(), &p).unwrap();
                    assert_eq!(again.ids, d.ids, "a seed reproduces the sample");
                }
            }
        }
    }

    #[test]
    fn sampling_without_replacement_fills_up_with_impossible_tokens() {
        let scores = [0.0, f32::NEG_INFINITY, -1e9, f32::NEG_INFINITY, -1.0];
        let picks = sample_without_replacement(&scores, 4, &mut Rng::new(1));
        assert_eq!(picks.len(), 4);
        assert_eq!(picks[..2], [0, 4], "possible tokens first, best first");
        let unique: std::collections::HashSet<_> = picks.iter().collect();
        assert_eq!(unique.len(), 4, "no index twice: {picks:?}");
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut p = params(1);
        let greedy = decode(&mut table(), &p).unwrap();
        p.sampling = Some(Sampling {
            temperature: 0.7,
            top_k: 1,
            top_p: 1.0,
            seed: 3,
        });
        assert_eq!(decode(&mut table(), &p).unwrap().ids, greedy.ids);
    }
}
