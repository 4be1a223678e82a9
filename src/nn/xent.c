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

float xent_smooth_forward(float *probs, const float *logits, const int32_t *labels, int B,
                          int K, float eps, int *correct)
{
    float loss = xent_forward(probs, logits, labels, B, K, correct);
    if (!labels || eps == 0)
        return loss;
    /* -sum_k q_k log p_k = (1 - eps) CE(label) + eps mean_k(-log p_k) */
    double uniform = 0;
    for (int b = 0; b < B; b++) {
        const float *l = logits + (size_t)b * K;
        float mx = l[0];
        for (int j = 1; j < K; j++)
            mx = l[j] > mx ? l[j] : mx;
        double sum = 0, mean = 0;
        for (int j = 0; j < K; j++) {
            sum += exp((double)l[j] - mx);
            mean += (double)l[j] - mx;
        }
        uniform += log(sum) - mean / K;
    }
    return (float)((1.0 - eps) * loss + eps * uniform / B);
}

void xent_smooth_backward(float *dlogits, const float *probs, const int32_t *labels, int B,
                          int K, float eps, float dloss)
{
    const float s = dloss / B, off = eps / K, on = 1.0f - eps + eps / K;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < K; j++)
            dlogits[(size_t)b * K + j] +=
                s * (probs[(size_t)b * K + j] - (j == labels[b] ? on : off));
}
