"""The lecture guide on the studio's first screen: a short script for a class, with the bundled checkpoints."""

LECTURE_GUIDE = """\
### Teaching mode: a 15-minute class on self-attention

For the bundled **faces32-sagan** checkpoint: 32×32 cartoon faces, mirror-symmetric, whose two eyes always
share one random colour and sit far apart. A 3×3 convolution cannot see both eyes at once; self-attention
can. G and D each have one attention layer on their 16×16 feature map (C = 32 channels, C̄ = C/8 = 4).

1. Open the **Teaching** tab, keep weights **EMA-G** and layer **G.attn0**, and **generate seed 7**.
2. **Click the left eye** (the one on your left). Read steps 1–2: the input at that cell is one vector x_j
   of 32 numbers, and its query g(x_j) has only 4. *Why can 4 numbers be enough to decide where to look?*
3. Look at the **scores** and at **β** beside them. The softmax turns 256 scores into one distribution that
   sums to 1 (step 4 prints the sum). *Where is the brightest key cell: on the other eye, on the same eye,
   or spread over the face? How many times the uniform 1/256 is the largest β?*
4. **Click the other eye.** *Does its map mirror the first one?* Nobody told the network the faces are
   symmetric.
5. Click the cheek, then the background. *Which query attends most sharply (max β ÷ uniform)?*
6. Read step 6, y_j = γ·o_j + x_j: *how long is γ·o_j next to x_j?* The last line checks that the steps
   reproduce the layer's own output.
7. **Move γ to 0 and press Apply γ.** This switches G's attention off for this one image (the checkpoint is
   not changed). *What changes in the difference map: the eyes' colour, their shape, the whole face? What
   share of the pixels changed?*
8. Try γ at twice the learned value. *Does the image exaggerate anything?*
9. Choose layer **D.attn0** (same image and query), set γ = 0 and apply. The image cannot change (D looks
   at it after it is made), but D(x) does. *What is D's attention for?*
10. Discuss: Zhang et al. (2018) say attention helps with long-range, geometric structure. *What did you see
    today that supports this, and what does not?*
"""
