/*
 * xent.c - softmax cross-entropy for the probes' classifiers.
 */
#include "config.h"

#include <math.h>

#include "aim/nn.h"

float xent_forward(float *probs, const float *logits, const int32_t *labels, int B, int K,
                   int *correct)
{
    double loss = 0;
    int hits = 0;
    for (int b = 0; b < B; b++) {
        const float *l = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        float mx = l[0];
        int arg = 0;
        for (int j = 1; j < K; j++)
            if (l[j] > mx) {
                mx = l[j];
                arg = j;
            }
        double sum = 0;
        for (int j = 0; j < K; j++) {
            p[j] = expf(l[j] - mx);
            sum += p[j];
        }
        for (int j = 0; j < K; j++)
            p[j] = (float)(p[j] / sum);
        if (labels) {
            loss += -(l[labels[b]] - mx - log(sum));
            hits += arg == labels[b];
        }
    }
    if (correct)
        *correct = hits;
    return (float)(loss / B);
}

void xent_backward(float *dlogits, const float *probs, const int32_t *labels, int B, int K,
                   float dloss)
{
    float s = dloss / B;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < K; j++)
            dlogits[(size_t)b * K + j] += s * (probs[(size_t)b * K + j] - (j == labels[b]));
}
