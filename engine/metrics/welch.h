// Welch's t-test (unequal variances), two-sided, as scipy.stats.ttest_ind(a, b, equal_var=False):
// does a difference of means between two configurations' seeds stand out of their spread?
#pragma once

#include <vector>

namespace ruche {

struct WelchResult {
  double t = 0;        // (mean a - mean b) / sqrt(var a / na + var b / nb), sample variances
  double df = 0;       // Welch-Satterthwaite degrees of freedom
  double p = 1;        // two-sided p-value; 1 when both spreads are 0 and the means equal, 0 when
                       // they differ (scipy says NaN for both)
  bool valid = false;  // false: fewer than 2 values on a side (t, df, p meaningless)
};

WelchResult welch_t_test(const std::vector<double>& a, const std::vector<double>& b);

// The regularized incomplete beta function I_x(a, b) (continued fraction, Numerical Recipes'
// betacf), and the two-sided tail of Student's t with df degrees of freedom: P(|T| >= |t|).
double incomplete_beta(double a, double b, double x);
double student_t_two_sided(double t, double df);

double mean_of(const std::vector<double>& v);
// Sample standard deviation (ddof 1); 0 for fewer than 2 values.
double sample_std(const std::vector<double>& v);

}  // namespace ruche
