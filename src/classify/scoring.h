/* Scoring helpers on top of cosine similarities: top-k selection and categories-file scoring. */
#ifndef CLXP_CLASSIFY_SCORING_H
#define CLXP_CLASSIFY_SCORING_H

#include "clxp.h"
#include "io/prompts.h"

/* Indices of the k largest values of p[0..n) in descending order (ties: lower index first). k <= n. */
void score_top_k(const float *p, int n, int k, int *idx);

/* Categories scoring for one image: sims[j] = cosine(image, prompt j) for every prompt of the set.
 * For each unit, softmax over the unit's prompts of scale * sims / temperature; a category's score is the sum
 * of its prompts' probabilities (so a unit's category scores sum to 1). cat_scores: [n_cats];
 * best_cat: [n_units], the index of each unit's highest-scoring category. CLXP_ERR_NOMEM if scratch fails. */
clxp_status score_categories(const prompt_set *ps, const float *sims, float scale, float temperature, float *cat_scores,
                      int *best_cat);

#endif
