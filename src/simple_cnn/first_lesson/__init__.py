"""The course's first lesson, measured: hand-made features (HOG + SVM) against the CNN under
rotation, lighting and shifts (:mod:`.robustness`), what an SVM's fit costs as data grows
(:mod:`.svm_cost`), and the three claims judged by the ablation study's rule (:mod:`.claims`)."""
