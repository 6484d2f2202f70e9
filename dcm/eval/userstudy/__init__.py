"""The user study of the paper's Table 2: blinded pairwise rater sheets, their key, and the vote count."""
